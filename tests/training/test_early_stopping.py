"""Early stopping on resume: the configured patience wins, the counters are restored."""

from __future__ import annotations

from pytorch_lightning.callbacks import EarlyStopping

from seq2seq.training.early_stopping import ConfiguredEarlyStopping


def test_configured_patience_survives_loading_a_checkpoint_state() -> None:
    old = EarlyStopping(monitor="val/bleu", mode="max", patience=3)
    old.wait_count, old.best_score = 2, old.best_score.new_tensor(26.5)
    resumed = ConfiguredEarlyStopping(monitor="val/bleu", mode="max", patience=10)
    resumed.load_state_dict(old.state_dict())
    assert resumed.patience == 10
    assert resumed.wait_count == 2
    assert float(resumed.best_score) == 26.5


def test_state_key_matches_lightnings_so_old_checkpoints_restore() -> None:
    plain = EarlyStopping(monitor="val/bleu", mode="max")
    ours = ConfiguredEarlyStopping(monitor="val/bleu", mode="max")
    assert ours.state_key == plain.state_key
