"""The 720-architecture ConvNet space of the DDFAD paper's NAS experiment (Section 5.2, after DC/MTT).

depth x width x activation x normalisation x pooling = 4 x 4 x 3 x 5 x 3 = 720; the values are the option
strings of :class:`ddfad_apps.models.ConvNet`.
"""

from search_spaces.base import SearchSpace

SPACE = SearchSpace(
    name="convnet720",
    model="convnet",
    dimensions={
        "depth": (1, 2, 3, 4),
        "width": (32, 64, 128, 256),
        "activation": ("sigmoid", "relu", "leakyrelu"),
        "norm": ("none", "batchnorm", "layernorm", "instancenorm", "groupnorm"),
        "pooling": ("none", "maxpooling", "avgpooling"),
    },
    description="ConvNet depth {1..4} x width {32..256} x activation x norm x pooling (DDFAD Sec. 5.2)",
)
