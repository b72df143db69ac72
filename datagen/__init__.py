"""datagen: PDE problem families that produce sequences of linear systems, an ordered
generation pipeline over any ``linsolve`` solver, and an HDF5 store in The Well's layout."""
from __future__ import annotations

from .family import Family, available_families, get_family, register_family

__all__ = ["Family", "available_families", "get_family", "register_family", "open_dataset"]


def open_dataset(path):
    """Open a file that ``datagen`` wrote: the package's own reader of its HDF5 layout.

    Parameters
    ----------
    path : str or pathlib.Path
        A file of ``datagen generate`` (any steady family), of ``datagen generate channel``,
        of ``datagen les`` or of ``operators rollout``.

    Returns
    -------
    datagen.storage.GeneratedData or datagen.storage.TrajectoryData
        For a steady family, ``GeneratedData``: ``x`` ``(N, C_in, *grid)`` and ``y`` ``(N, C_out, *grid)``
        float32 arrays, ``fields`` (every stored field by name), ``input_fields`` /
        ``output_fields``, ``parameters`` (one dict per sample, as sampled), ``stats`` (per-sample
        solver statistics), ``coordinates``, ``attrs``, ``config``, ``boundary_conditions`` and
        ``torch()`` (a PyTorch ``Dataset`` of ``{"x", "y"}``). For a time-dependent file (channel
        trajectories), ``TrajectoryData``: ``velocity`` ``(K, S, NX, NY, NZ, 3)``, ``time``,
        ``coordinates``, ``scalars``.

    Raises
    ------
    datagen.storage.StoreError
        The file does not exist, is not readable HDF5, or does not match the layout (the message
        names the first problem). A ``ValueError`` subclass.

    See Also
    --------
    datagen.pipeline.generate : writes such files from Python.

    Notes
    -----
    The layout is The Well's, so ``the_well.data.WellDataset`` reads the same files; the groups
    it does not know (parameters, ordering, solver statistics, solution vectors) are what make a
    file auditable. See the HDF5 format page.

    Examples
    --------
    >>> import datagen
    >>> from datagen.pipeline import GenerateConfig, generate
    >>> summary = generate(GenerateConfig(problem="poisson", n=4, grid=8, solver="cg", seed=0), "p.h5")
    >>> data = datagen.open_dataset("p.h5")
    >>> data.x.shape, data.y.shape, data.input_fields, data.output_fields
    ((4, 2, 8, 8), (4, 1, 8, 8), ['f', 'boundary_value'], ['u'])
    >>> bool(data.stats["converged"].all())
    True
    """
    from .storage.dataset import open_dataset as _open_dataset

    return _open_dataset(path)
