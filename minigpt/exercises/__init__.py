"""Checks for the course's exercises, one module per notebook.

Every check prints one line and returns a ``Verdict`` (true when the answer is right):

    ✓ what you got right
    ✗ what is wrong (hint: what to look at)
    ○ not attempted yet: ... (an exercise still as given, returning None)

A wrong answer never ends in a red traceback: an error raised by the learner's code is reported
as a line too. The reference solutions live in ``minigpt.exercises.solutions``, out of sight of
the notebooks, which import them only to go on when an exercise is not done yet.

    from minigpt.exercises import tokenization as check
    check.merge(merge)                  # prints ✓ / ✗ / ○ and returns a Verdict
"""

from __future__ import annotations

import functools

__all__ = ["Verdict", "Hint", "NotAttempted", "exercise"]


class Hint(Exception):
    """Raised inside a check: the answer is wrong; the message says how, and what to try."""


class NotAttempted(Exception):
    """Raised inside a check: the learner's function still returns None."""


class Verdict:
    """The outcome of a check: ``bool(verdict)`` is True when the answer is right."""

    def __init__(self, ok: bool, message: str, attempted: bool = True):
        self.ok, self.message, self.attempted = ok, message, attempted

    def __bool__(self) -> bool:
        return self.ok

    @property
    def line(self) -> str:
        mark = "✓" if self.ok else ("✗" if self.attempted else "○")
        return f"{mark} {self.message}"

    def __repr__(self) -> str:
        return f"Verdict({self.line!r})"

    def _ipython_display_(self):
        pass  # the check has printed its line already; a notebook shows nothing more


def not_attempted(name: str, where: str) -> NotAttempted:
    """The standard 'not yet' message for a function ``name`` whose solution is in module ``where``
    (``name == "answer"``: a widget question, answered by setting a variable)."""
    if name == "answer":
        return NotAttempted("not answered yet: answer is None. Use the widget above, set answer and run the cell "
                            "again")
    return NotAttempted(f"not attempted yet: {name} returns None. Fill in the TODO and run the cell again "
                        f"(stuck? a reference solution is in minigpt/exercises/solutions/{where}.py)")


def exercise(check):
    """Turn ``check`` into a checker that prints one line and returns a Verdict.

    ``check`` returns the success message, or raises Hint (wrong, with a hint) or NotAttempted;
    any other exception comes from the learner's code and is reported as a wrong answer.
    """

    @functools.wraps(check)
    def run(*args, **kwargs) -> Verdict:
        try:
            verdict = Verdict(True, check(*args, **kwargs))
        except NotAttempted as e:
            verdict = Verdict(False, str(e), attempted=False)
        except Hint as e:
            verdict = Verdict(False, str(e))
        except Exception as e:  # raised by the learner's code: say so in one line
            verdict = Verdict(False, f"your code raised {type(e).__name__}: {e} (hint: run it on a small "
                                     f"input by itself and read the message; the check could not go on)")
        print(verdict.line)
        return verdict

    return run
