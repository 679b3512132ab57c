r"""The lessons' exercise checks.

Each check takes the learner's answer, prints one line and returns ``True`` (correct), ``False`` (wrong: the line
says why, and names the known slips: the paper's index for the code's, a standard deviation for a variance, a
missing square root, a hard-coded number) or ``None`` (not attempted yet: the exercise cell still holds ``None``, or
its function still raises ``NotImplementedError``).  So a lesson runs top to bottom before any exercise is done.

A check works the truth out itself, from the question's own inputs and by an independent route (plain Python floats,
float64 brute force, a closed form), never from the learner's intermediate results.  Where the answer is a
function, the check calls it on inputs of its own.  ``tests/test_exercises.py`` feeds every check its solution (kept
apart in ``lessons/solutions/``, out of the learner's sight) and the plausible wrong answers, which must fail.

Names: ``lessonNN_what``.  The index convention is the course's: code ``t`` = paper :math:`t - 1`.
"""

from ._common import NOT_ATTEMPTED  # noqa: F401
from .lesson00 import *  # noqa: F401,F403
from .lesson01 import *  # noqa: F401,F403
from .lesson02 import *  # noqa: F401,F403
from .lesson03 import *  # noqa: F401,F403
from .lesson04 import *  # noqa: F401,F403
from .lesson05 import *  # noqa: F401,F403
from .lesson06 import *  # noqa: F401,F403
from .lesson07 import *  # noqa: F401,F403
from .lesson08 import *  # noqa: F401,F403
from .lesson09 import *  # noqa: F401,F403
from .lesson10 import *  # noqa: F401,F403
from .lesson11 import *  # noqa: F401,F403
from .lesson12 import *  # noqa: F401,F403
from .lesson13 import *  # noqa: F401,F403
