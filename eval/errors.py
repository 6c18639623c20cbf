"""Errors that end an evaluation before it can decide (exit status 2)."""


class GateInputError(Exception):
    """A flag, file or input that the gate cannot use.

    The message always names the offending file (or flag) and the problem, because it is what a user
    sees in place of a traceback.
    """

    def __init__(self, where, problem):
        self.where = str(where)
        self.problem = problem
        super().__init__(f"{self.where}: {problem}")

    def __reduce__(self):
        # Two-argument __init__: tell pickle how to rebuild it (errors cross Modal containers).
        return GateInputError, (self.where, self.problem)
