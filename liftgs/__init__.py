"""LIFT-GS: feedforward 3D language grounding trained by rendering Gaussians into 2D views.

Importing the package hides one dependency notice: nerfstudio compiles a helper with ``torch.jit.script``
at import time, and torch announces that function's deprecation on every command. It is not the user's to
act on, and it would stand before every one-line error the commands print.
"""

import warnings

warnings.filterwarnings("ignore", message=r"`torch\.jit\.script` is deprecated", category=FutureWarning)
