"""service/ray_serve.py needs the optional ray extra: without it, doctest collection skips it."""

import importlib.util

collect_ignore = [] if importlib.util.find_spec("ray") else ["ray_serve.py"]
