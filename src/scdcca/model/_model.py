"""``scdcca.DCCA``: the scvi-tools model class users work with."""

from __future__ import annotations

import logging

import numpy as np
from lightning.pytorch.utilities import rank_zero_only
from mudata import MuData
from scvi.data import fields
from scvi.model.base import BaseModelClass

from scdcca._constants import BATCH_KEY, EPI_KEY, MODALITIES, OBSERVED_KEYS, RNA_KEY
from scdcca._mudata import no_pull_on_update
from scdcca._scvi import SCVI_UUID_KEY
from scdcca._version import __version__
from scdcca.data import _validation as validate
from scdcca.data._fields import SCAN_KEY, MuDataModalityLayerField
from scdcca.data._manager import DCCAManager
from scdcca.data._pairing import OBSERVED_COLUMNS, is_paired, padded_twin, share_registration
from scdcca.module import DCCAModule, EpiLikelihood, RNALikelihood
from scdcca.module._precision import HeadPrecision, check_head_precision

from . import _arguments as arguments
from . import _saving as saving
from ._differential import DifferentialMixin
from ._export import ExportMixin
from ._prediction import PredictionMixin
from ._results import ResultsMixin
from ._training import TrainingMixin

logger = logging.getLogger(__name__)


class DCCA(
    TrainingMixin,
    ResultsMixin,
    PredictionMixin,
    DifferentialMixin,
    ExportMixin,
    BaseModelClass,
):
    """Deep Cross-omics Cycle Attention (Zuo, Dai & Chen, Bioinformatics 2021).

    One VAE per modality, each with its own ``n_latent``-dimensional latent: RNA with a
    zero-inflated negative-binomial (or NB) decoder and the epigenome (ATAC, histone marks,
    methylation) with a Bernoulli (or Gaussian) decoder. Training alternates teacher and student: a
    student's loss adds ``beta * ||z_teacher - z_student||^2`` with the teacher frozen.

    Parameters
    ----------
    mdata
        MuData registered with :meth:`setup_mudata`.
    n_latent
        Size of each modality's latent space (the joint latent has twice as many columns).
    n_hidden
        Width of hidden layers.
    n_layers
        Hidden layers in each encoder and decoder.
    dropout_rate
        Dropout after each hidden layer.
    rna_likelihood
        ``"zinb"`` (default) or ``"nb"`` for raw counts; ``"gaussian"`` for RNA published only
        as normalised (e.g. log-scale) expression, modelled as it is. ``"zinb"`` adds a
        zero-inflation output per gene; ``"nb"`` trains faster (timings in
        ``benchmarks/DETAILS.md``).
    epi_likelihood
        ``"bernoulli"`` for binary calls, ``"gaussian"`` for continuous rates.
    rna_input_dropout
        Fraction of the RNA encoder's (log-normalised) input entries set to zero while
        training, the rest scaled up; 0 turns it off.
    head_precision
        Precision of the decoder output heads' matrix products while training, which hold
        most of a step's arithmetic: ``"bfloat16"`` multiplies bfloat16 copies of their
        inputs and weights and returns float32 (mixed precision; weights, likelihoods and
        optimiser stay float32), ``"float32"`` keeps full precision, and ``"auto"`` (default)
        uses bfloat16 on CPUs with native bfloat16 arithmetic (AVX512-BF16 or AMX), float32
        elsewhere. Validation, getters and generation always run in float32.

    Examples
    --------
    >>> mdata = scdcca.datasets.scicar_kidney()
    >>> scdcca.DCCA.setup_mudata(mdata, modalities={"rna_layer": "rna", "epi_layer": "atac"})
    >>> model = scdcca.DCCA(mdata)
    >>> model.train()
    >>> model.write_results(mdata)
    """

    _module_cls = DCCAModule

    def __init__(
        self,
        mdata: MuData,
        n_latent: int = 20,
        n_hidden: int = 128,
        n_layers: int = 1,
        dropout_rate: float = 0.1,
        rna_likelihood: RNALikelihood = "zinb",
        epi_likelihood: EpiLikelihood = "bernoulli",
        rna_input_dropout: float = 0.3,
        head_precision: HeadPrecision = "auto",
    ):
        arguments.check_architecture(n_latent, n_hidden, n_layers, dropout_rate, rna_input_dropout)
        check_head_precision(head_precision)
        registered = self._registered_data(mdata)
        super().__init__(registered)
        # the user's MuData when it has unpaired cells (the model trains on its padded twin);
        # not a saved attribute: a save holds the data only with ``save_anndata=True``
        self._unpaired_source = None if registered is mdata else mdata
        #: scdcca release that built the model (kept through save and load).
        self.scdcca_version_ = __version__
        args = self.adata_manager.registry["setup_args"]
        self.modalities_ = dict(args["modalities"])
        rna = self.adata_manager.get_from_registry(RNA_KEY)
        epi = self.adata_manager.get_from_registry(EPI_KEY)
        # non-zero calls per measured cell (Bernoulli calls are 0/1), from the field's scan
        depth = self.adata_manager.get_state_registry(EPI_KEY)[SCAN_KEY]["mean_cell_nonzero"]
        self.module = self._module_cls(
            n_genes=rna.shape[1],
            n_regions=epi.shape[1],
            n_batch=self.summary_stats.n_batch,
            n_latent=n_latent,
            n_hidden=n_hidden,
            n_layers=n_layers,
            dropout_rate=dropout_rate,
            rna_likelihood=rna_likelihood,
            epi_likelihood=epi_likelihood,
            log_mean_epi_depth=float(np.log1p(depth)),
            rna_input_dropout=rna_input_dropout,
            head_precision=head_precision,
        )  # checks the likelihood names
        validate.check_model_input(self.adata_manager, rna_likelihood, epi_likelihood)
        self._model_summary_string = (
            f"DCCA: n_latent={n_latent}, n_hidden={n_hidden}, n_layers={n_layers}, "
            f"rna={rna_likelihood} ({rna.shape[1]} genes), "
            f"epi={epi_likelihood} ({epi.shape[1]} regions)"
        )
        self.schedule_: list[dict] = []
        self.init_params_ = self._get_init_params(locals())

    @classmethod
    def _registered_data(cls, mdata: MuData) -> MuData:
        """The MuData registered for ``mdata``: itself, or the padded twin of unpaired cells."""
        if not isinstance(mdata, MuData):
            raise TypeError(
                f"DCCA takes a MuData set up with `scdcca.DCCA.setup_mudata`, got "
                f"{type(mdata).__name__}."
            )
        manager = cls._setup_adata_manager_store.get(mdata.uns.get(SCVI_UUID_KEY))
        if manager is None:
            raise ValueError(
                "This MuData is not set up for DCCA: call `scdcca.DCCA.setup_mudata(mdata, "
                "modalities={'rna_layer': ..., 'epi_layer': ...})` first."
            )
        if manager.adata is not mdata and not manager.is_twin_of(mdata):
            raise ValueError(
                "This MuData is a copy of one set up for DCCA, not the object itself: call "
                "`scdcca.DCCA.setup_mudata` on it."
            )
        return manager.adata

    # ------------------------------------------------------------------ setup
    @classmethod
    def setup_anndata(cls, *args, **kwargs):
        """DCCA needs two modalities: use :meth:`setup_mudata`."""
        raise NotImplementedError(
            "DCCA trains on paired modalities: build a MuData and call `DCCA.setup_mudata`."
        )

    @classmethod
    def setup_mudata(
        cls,
        mdata: MuData,
        rna_layer: str | None = None,
        epi_layer: str | None = None,
        batch_key: str | None = None,
        binarize_epi: bool = False,
        modalities: dict[str, str] | None = None,
        **kwargs,
    ) -> None:
        """Register a MuData with paired RNA and epigenome measurements.

        Parameters
        ----------
        mdata
            MuData with an RNA modality (raw counts) and an epigenome modality.
        rna_layer
            Layer of the RNA modality holding raw counts; ``None`` for ``X``.
        epi_layer
            Layer of the epigenome modality; ``None`` for ``X``.
        batch_key
            Column of ``.obs`` with the batch of each cell; ``None`` for one batch. It is read
            from ``mdata.obs`` unless ``modalities["batch_key"]`` names a modality.
        binarize_epi
            Treat every non-zero epigenome value as 1 (for peak count matrices). The data are
            not changed; minibatches are binarised as they are loaded.
        modalities
            Which modality plays which role, for example
            ``{"rna_layer": "rna", "epi_layer": "atac"}``.

        Notes
        -----
        Every value is checked in one streamed pass (blocks of rows; nothing is densified).
        An error naming the modality and the fix is raised here for infinite values, NaN in
        the RNA, duplicated cell or feature names, cells missing from ``mdata.obs_names``
        (run ``mdata.update()``), missing modalities, layers or ``obs`` keys, batch keys
        with gaps, and categorical batch keys with categories no cell has (each would be a
        batch that never trains: run ``.cat.remove_unused_categories()``); and when the model
        is built, for RNA that is not raw counts (negative or non-integer values, with the
        NB/ZINB likelihood) and for an epigenome that is not 0/1 (with the Bernoulli
        likelihood, unless ``binarize_epi=True``). NaN in the epigenome
        marks an entry that was not measured and is left out of the likelihood. Cells measured
        in one modality only, or listed in another order, are paired by name. Cells without
        counts and features that are zero everywhere give a warning saying how many
        (``InputWarning``, a ``UserWarning``).

        Accepted as they are: NumPy arrays in any order and of any integer, float or bool
        dtype, SciPy CSR and CSC matrices and arrays (CSC works but is read more slowly, with a
        warning), dask arrays and backed MuData (``mudata.read_h5mu(path, backed=True)``). A
        backed MuData stays on disk and is read a minibatch at a time, except when its
        modalities hold different cells: the padded copy of the two registered layers that
        pairs them is then built in memory (sparse layers stay sparse).

        The MuData is not modified, except for the fields scvi-tools registers
        (``mdata.obs["_scvi_batch"]``, ``mdata.uns["_scvi_uuid"]`` and
        ``mdata.uns["_scvi_manager_uuid"]``); results are only written by
        :meth:`write_results`.
        """
        modalities = dict(modalities or {})
        batch_modality = modalities.get("batch_key")
        setup_method_args = cls._get_setup_method_args(**locals())
        setup_method_args["setup_args"]["modalities"] = modalities
        # a loaded model keeps the batches it was trained with
        setup = kwargs.get("source_registry") is None
        validate.check_mudata(mdata, modalities, batch_key, batch_modality, setup=setup)
        registered = mdata
        observed_fields = []
        if not is_paired(mdata, modalities):
            # cells measured by one modality only (or listed in another order): train on a
            # padded twin that pairs them by name; the user's MuData is not changed
            if batch_key is not None and batch_modality is not None:
                raise ValueError(
                    "With unpaired cells the batch key must be a column of mdata.obs (one "
                    "value for every cell); run `mdata.update()` or copy it there, and drop "
                    "modalities['batch_key']."
                )
            layers = {"rna": rna_layer, "epi": epi_layer}
            validate.check_layers(mdata, modalities, layers)  # before they are copied
            registered = padded_twin(mdata, modalities, layers)
            observed_fields = [
                fields.NumericalObsField(OBSERVED_KEYS[role], OBSERVED_COLUMNS[role])
                for role in MODALITIES
            ]
        mudata_fields = [
            MuDataModalityLayerField(
                key,
                layer,
                role=role,
                modality=modalities[f"{role}_layer"],
                mod_key=modalities[f"{role}_layer"],
                mod_required=True,
            )
            for role, key, layer in (("rna", RNA_KEY, rna_layer), ("epi", EPI_KEY, epi_layer))
        ] + [
            fields.MuDataCategoricalObsField(BATCH_KEY, batch_key, mod_key=batch_modality),
            *observed_fields,
        ]
        adata_manager = DCCAManager(fields=mudata_fields, setup_method_args=setup_method_args)
        adata_manager.register_fields(registered, **kwargs)
        cls.register_manager(adata_manager)
        if registered is not mdata:
            share_registration(mdata, registered)
            adata_manager.remember_source(mdata)

    def _validate_anndata(self, adata: MuData | None = None, copy_if_view: bool = True) -> MuData:
        """Check a MuData the model was not set up with, then let scvi-tools transfer it."""
        if adata is not None and adata is self._unpaired_source:
            adata = self.adata  # unpaired cells are read through the padded twin
        if adata is None or adata is self.adata:
            return super()._validate_anndata(adata, copy_if_view=copy_if_view)
        args = self.adata_manager.registry["setup_args"]
        validate.check_mudata(
            adata, self.modalities_, args["batch_key"], args["modalities"].get("batch_key"), False
        )
        adata = super()._validate_anndata(adata, copy_if_view=copy_if_view)
        module = self.module
        manager = self.get_anndata_manager(adata)
        validate.check_model_input(manager, module.rna.likelihood, module.epi.likelihood)
        return adata

    def save(
        self,
        dir_path: str,
        prefix: str | None = None,
        overwrite: bool = False,
        save_anndata: bool = False,
        save_kwargs: dict | None = None,
        **anndata_write_kwargs,
    ) -> None:
        """Save the model; in distributed training rank 0 only.

        The files are those of :meth:`scvi.model.base.BaseModelClass.save` (``model.pt`` and,
        with ``save_anndata``, ``mdata.h5mu``), written into a temporary folder first and then
        moved into ``dir_path``: a save that fails (full disk, crash) leaves an earlier save
        there loadable. Saving without data over a save with data removes the old data file,
        and the two files of one save carry a shared token, so :meth:`load` never pairs these
        weights with another save's cells. With unpaired cells, ``save_anndata`` writes the
        MuData the model was set up with (not the padded copy it trains on).

        Parameters
        ----------
        dir_path
            Directory to save into.
        prefix
            Prefix of the file names.
        overwrite
            Replace a model already saved in ``dir_path`` (with the same ``prefix``).
        save_anndata
            Also save the MuData the model was set up with.
        save_kwargs
            Passed to :func:`torch.save`.
        **anndata_write_kwargs
            Passed to :meth:`mudata.MuData.write`.

        Raises
        ------
        OSError
            When the disk fills up while writing (``errno.ENOSPC``); an earlier save in
            ``dir_path`` is left as it was.
        """
        if rank_zero_only.rank != 0:  # distributed training: rank 0 writes
            return
        self.save_token_ = saving.new_token()
        source = self._unpaired_source

        def write(folder) -> None:
            BaseModelClass.save(
                self,
                str(folder),
                prefix=prefix,
                overwrite=True,
                save_anndata=save_anndata and source is None,
                save_kwargs=save_kwargs,
                **anndata_write_kwargs,
            )
            if save_anndata and source is not None:
                source.write(folder / f"{prefix or ''}{saving.DATA_FILE}", **anndata_write_kwargs)

        with no_pull_on_update():  # the MuData is written as it is
            saving.write_atomically(dir_path, prefix, overwrite, write, self.save_token_)

    @classmethod
    def load(
        cls,
        dir_path: str,
        adata: MuData | None = None,
        accelerator: str = "auto",
        device: int | str = "auto",
        prefix: str | None = None,
        **kwargs,
    ) -> DCCA:
        """Load a model saved with :meth:`save`.

        Parameters
        ----------
        dir_path
            Directory the model was saved into.
        adata
            MuData to attach the model to (the same features; set up again with the saved
            settings). ``None``: the MuData saved with the model (``save_anndata=True``).
        accelerator, device
            Where to put the model (see :meth:`scvi.model.base.BaseModelClass.load`).
        prefix
            Prefix of the saved file names.
        **kwargs
            Passed to :meth:`scvi.model.base.BaseModelClass.load`.

        Raises
        ------
        ValueError
            When no data were saved and none is passed, when the saved data file belongs to
            another save, or when a newer scdcca release saved the model.
        """
        attributes = saving.saved_attributes(dir_path, prefix)
        if attributes:
            saving.check_saved_version(attributes.get("scdcca_version_"), __version__)
            # the saved data are read only when no MuData is passed: only then must they match
            has_data = adata is not None or saving.check_saved_data(dir_path, prefix, attributes)
            if not has_data and not kwargs.get("backup_url"):
                raise ValueError(
                    f"The model in {dir_path} was saved without its data "
                    "(save_anndata=False): pass the MuData it was trained on, "
                    "`DCCA.load(dir_path, adata=mdata)`."
                )
        with no_pull_on_update(), saving.quiet_scvi_load():
            return super().load(
                dir_path,
                adata=adata,
                accelerator=accelerator,
                device=device,
                prefix=prefix,
                **kwargs,
            )
