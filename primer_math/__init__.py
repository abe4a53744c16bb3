"""The math inside the box, as small numpy functions checked against torch and scipy.

- ``vectors``: embeddings as geometry (cosine, dot, L2, angle, 3CosAdd / 3CosMul analogies)
- ``softmax``: softmax as a vote (temperature, top-k, top-p, entropy)
- ``attention``: a similarity-weighted average (masks, multi-head, the measured n^2 cost)
- ``loss``, ``descent``, ``surfaces``, ``regression``: rolling downhill (cross-entropy, SGD,
  momentum, Adam, AdamW, 2-D landscapes, a softmax-regression trainer)
- ``explain``: each topic in words; ``plots``: PNG pictures (matplotlib, imported lazily)
- ``python -m primer_math``: the command line (see ``cli``)

numpy is the only dependency; torch and scipy appear in the tests, as references.
"""
