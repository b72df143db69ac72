"""Exceptions raised for bad input. Every one is a ``ValueError`` so callers that already
catch SciPy's input errors keep working."""


class SolverError(ValueError):
    """Base class for every input or configuration error raised by linsolve."""


class ShapeError(SolverError):
    """Non-square matrix, or sizes of A, b and x0 that do not agree."""


class NonFiniteError(SolverError):
    """NaN or Inf in A, b or x0."""


class OptionError(SolverError):
    """A bad option value: negative tolerance, unknown keyword, wrong type."""


class UnknownSolverError(SolverError):
    """A solver name that is not in the registry."""


class UnknownPreconditionerError(SolverError):
    """A preconditioner name that is not known for the chosen backend."""


class PetscUnavailableError(SolverError):
    """PETSc was asked for but petsc4py cannot be imported.

    Parameters
    ----------
    what : str, optional
        What needed PETSc, for the message.
    """

    def __init__(self, what: str = "the PETSc backend"):
        super().__init__(
            f"{what} needs petsc4py, which is not installed; install it with "
            "`pip install 'linsolve[petsc]'` (or `make setup`, which builds PETSc once)"
        )


class UnsupportedInputError(SolverError):
    """An input kind the solver cannot use (e.g. a matrix-free operator for a method
    that needs matrix entries)."""
