"""Looking at trained models: the command ``python -m dismir_tf.analysis``
(``__main__``: collapse, diagnose, tsne, catalogue, sweep, variants) and
what it is built from:

* :mod:`measures`: disentanglement measures (partition vs planted groups,
  NMI, purity, interest similarity, spherical k-means);
* :mod:`collapse`: Table 4 (interest collapse over sampled users);
* :mod:`sweep`: the hyper-parameter sweep (Figure 4);
* :mod:`plots`: the pictures (matplotlib / scikit-learn's t-SNE, imported
  lazily).

The collapse diagnostics logged during training are in
:mod:`dismir_tf.diagnostics` (training depends on them; nothing in the
package depends on this subpackage).
"""
