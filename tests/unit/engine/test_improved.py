"""Which epoch is "best": accuracy first, validation loss breaks a tie (issue 10)."""

from __future__ import annotations

from imgclf.engine import improved


def test_an_accuracy_tie_goes_to_the_lower_validation_loss() -> None:
    assert improved(1.0, 1.0, "val_acc", loss=0.75, best_loss=0.97)  # same 100%, better fitted: the later epoch
    assert not improved(1.0, 1.0, "val_acc", loss=0.99, best_loss=0.97)
    assert not improved(1.0, 1.0, "val_acc")  # no losses logged: a tie is no improvement, as before
    assert not improved(0.9, 1.0, "val_acc", loss=0.1, best_loss=0.9)  # accuracy still decides first
    assert improved(0.5, 0.6, "val_loss") and not improved(0.6, 0.6, "val_loss", loss=0.1, best_loss=0.9)
    assert improved(0.1, None, "val_acc")
