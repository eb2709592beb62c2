import pytest

from scdcca.model import build_schedule


def test_cycle_schedule_follows_the_paper():
    phases = build_schedule("cycle", n_cycles=2)
    assert [p.name for p in phases] == [
        "rna",
        "epi",
        "epi<-rna",
        "rna<-epi",
        "epi<-rna",
        "rna<-epi",
    ]
    assert phases[2].attention_weights == {"epi": 5.0}
    assert phases[3].attention_weights == {"rna": 1.0}
    assert phases[0].attention_weights == {}


def test_first_teacher_and_weights_are_arguments():
    phases = build_schedule("cycle", n_cycles=1, first_teacher="epi", beta1=2.0, beta2=3.0)
    assert [p.name for p in phases] == ["epi", "rna", "rna<-epi", "epi<-rna"]
    assert phases[2].attention_weights == {"rna": 3.0}
    assert phases[3].attention_weights == {"epi": 2.0}


def test_alternating_is_one_phase_with_both_students():
    (phase,) = build_schedule("alternating", beta1=5.0, beta2=1.0)
    assert phase.students == ("rna", "epi")
    assert phase.teacher is None
    assert phase.attention_weights == {"rna": 1.0, "epi": 5.0}


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"schedule": "random"}, "schedule must be"),
        ({"first_teacher": "atac"}, "first_teacher"),
        ({"beta1": -1.0}, "Attention weights"),
        ({"n_cycles": -1}, "n_cycles"),
    ],
)
def test_bad_schedule_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        build_schedule(**kwargs)
