"""Class-incremental continual learning on FD-MFCC features: Avalanche benchmarks, the EEIL runner, figures.

The Avalanche pieces (storage policies, EEIL plugins, MLflow logger) live in the top-level ``strategies``
package so any Avalanche experiment can use them; this package wires them to our data sets for ``ddfad-apps cicl``.
"""
