"""The teacher/student schedules DCCA trains with."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Literal

import torch

from scdcca._constants import MODALITIES
from scdcca.module import DCCAModule, other_modality

ScheduleName = Literal["cycle", "alternating"]


@dataclass(frozen=True)
class Phase:
    """One stage of training.

    Attributes
    ----------
    students
        Modalities whose VAE is updated in this phase (``("rna",)``, ``("epi",)`` or both).
    teacher
        Frozen modality whose latent the student is pulled towards, ``None`` for none. In a
        phase with both students each is pulled to the other's detached latent instead.
    weights
        Attention-transfer weight of each student.
    decoder_only
        Only the students' decoders learn, reading their encoders' posterior means (the
        encoders frozen, no sampling, no attention transfer): the phase that refines the
        epigenome decoder after DCCA's schedule (see :meth:`scdcca.DCCA.train`).
    """

    students: tuple[str, ...]
    teacher: str | None = None
    weights: tuple[tuple[str, float], ...] = ()
    decoder_only: bool = False

    @property
    def name(self) -> str:
        """Readable label, for example ``"epi<-rna"``, ``"rna"`` or ``"epi decoder"``."""
        if self.decoder_only:
            return " + ".join(self.students) + " decoder"
        if len(self.students) == 2:
            return "rna<->epi"
        student = self.students[0]
        return f"{student}<-{self.teacher}" if self.teacher else student

    @property
    def attention_weights(self) -> dict[str, float]:
        """``{student: beta}`` as the module's loss takes it (empty for a decoder phase)."""
        return {} if self.decoder_only else dict(self.weights)

    def parameters(self, module: DCCAModule) -> list[torch.nn.Parameter]:
        """The weights the phase updates: its students' VAEs, or only their decoders."""
        return [
            parameter
            for student in self.students
            for name, parameter in module.vae(student).named_parameters()
            if not (self.decoder_only and name.startswith("encoder."))
        ]

    def as_record(self) -> dict:
        """Plain-dict form for histories and ``mdata.uns``."""
        record = asdict(self)
        record["name"] = self.name
        return record


def build_schedule(
    schedule: ScheduleName | list[Phase],
    n_cycles: int,
    first_teacher: str,
    beta1: float,
    beta2: float | None,
) -> list[Phase]:
    """List the phases of a DCCA schedule.

    :meth:`scdcca.DCCA.train` calls it with its own arguments, whose defaults are the
    package's.

    Parameters
    ----------
    schedule
        ``"cycle"``: the paper's schedule. The first teacher's VAE alone, the other VAE
        alone, then ``n_cycles`` times: the other modality as student of the frozen first
        teacher, then the first teacher as student of the frozen other.
        ``"alternating"``: a single phase in which every minibatch updates both VAEs, each
        pulled towards the other's detached latent. A list of :class:`Phase` is used as it is.
    n_cycles
        Number of student/teacher rounds in the ``"cycle"`` schedule.
    first_teacher
        ``"rna"`` (the paper) or ``"epi"``.
    beta1
        Attention weight when the epigenome is the student (paper: 5).
    beta2
        Attention weight when RNA is the student. ``None``: the paper's 1 for ``"cycle"``,
        0.2 for ``"alternating"`` (see :meth:`scdcca.DCCA.train`).
    """
    if beta2 is None:
        beta2 = 1.0 if schedule == "cycle" else 0.2
    if first_teacher not in MODALITIES:
        raise ValueError(f"first_teacher must be 'rna' or 'epi', got {first_teacher!r}.")
    if not (0 <= beta1 < float("inf") and 0 <= beta2 < float("inf")):  # NaN fails too
        raise ValueError(
            f"Attention weights must be finite and >= 0, got beta1={beta1}, beta2={beta2}."
        )
    if n_cycles < 0:
        raise ValueError(f"n_cycles must be >= 0, got {n_cycles}.")
    weight = {"epi": float(beta1), "rna": float(beta2)}
    if isinstance(schedule, list | tuple):
        if not all(isinstance(p, Phase) for p in schedule):
            raise TypeError("A custom schedule must be a list of `scdcca.train.Phase`.")
        return list(schedule)
    if schedule == "alternating":
        return [Phase(students=MODALITIES, weights=tuple(weight.items()))]
    if schedule != "cycle":
        raise ValueError(f"schedule must be 'cycle' or 'alternating', got {schedule!r}.")
    teacher, student = first_teacher, other_modality(first_teacher)
    phases = [Phase(students=(teacher,)), Phase(students=(student,))]
    for _ in range(n_cycles):
        phases.append(
            Phase(students=(student,), teacher=teacher, weights=((student, weight[student]),))
        )
        phases.append(
            Phase(students=(teacher,), teacher=student, weights=((teacher, weight[teacher]),))
        )
    return phases
