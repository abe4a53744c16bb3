"""``python -m primer_math``: see ``primer_math.cli``."""

from primer_math.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
