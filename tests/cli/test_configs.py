"""Every experiment config composes, builds its model, and runs a fast dev run."""

from __future__ import annotations

from pathlib import Path

import pytest
from omegaconf import OmegaConf

from seq2seq.cli.train import train
from seq2seq.config import config_dir
from seq2seq.model import build_model
from tests.conftest import compose_config

EXPERIMENTS = sorted(p.stem for p in (Path(config_dir()) / "experiment").glob("*.yaml"))


def test_there_are_experiments() -> None:
    assert {"synthetic_bahdanau", "synthetic_cho"} <= set(EXPERIMENTS)


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_experiment_composes_and_builds(experiment: str, tmp_path: Path) -> None:
    cfg = compose_config(tmp_path, f"experiment={experiment}", debug=False)
    OmegaConf.resolve(cfg)
    model_cfg = OmegaConf.to_container(cfg.model)
    if cfg.task.name == "captioning":
        # The real backbone, with random weights: nothing may be downloaded here.
        model_cfg["encoder"]["weights"] = None
    model = build_model(model_cfg, 50, 60)
    assert model.decoder.vocab_size == 60


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_experiment_fast_dev_run(experiment: str, tmp_path: Path) -> None:
    cfg = compose_config(
        tmp_path, f"experiment={experiment}", "trainer.fast_dev_run=true", "test=false"
    )
    result = train(cfg)
    assert result["run_dir"]


def test_decoder_swap_from_command_line(tmp_path: Path) -> None:
    cfg = compose_config(tmp_path, "experiment=synthetic_bahdanau", "model/decoder=cho")
    assert cfg.model.decoder._target_.endswith("ContextDecoder")
    model = build_model(OmegaConf.to_container(cfg.model, resolve=True), 30, 30)
    assert model.decoder.init_proj.in_features == model.encoder.summary_dim


@pytest.mark.parametrize("experiment", ["wmt14_rnnsearch50", "wmt14_rnnencdec50"])
def test_wmt14_experiments_have_the_papers_settings(experiment: str, tmp_path: Path) -> None:
    """Bahdanau et al. 2015, Sec. 4.2 and Appendix B."""
    cfg = compose_config(tmp_path, f"experiment={experiment}", debug=False)
    dims = cfg.model.dims
    assert (dims.embed, dims.encoder_hidden, dims.decoder_hidden) == (620, 1000, 1000)
    assert (dims.attention, dims.maxout) == (1000, 500)
    assert cfg.optimizer._target_ == "torch.optim.Adadelta"
    assert (cfg.optimizer.rho, cfg.optimizer.eps) == (0.95, 1e-6)
    assert cfg.trainer.gradient_clip_val == 1.0
    assert (cfg.data.batch_size, cfg.data.sort_groups, cfg.data.max_len) == (80, 20, 50)
    assert cfg.data.tokenizer.vocab_size - 4 == 30000
    assert cfg.model.init == "bahdanau"


def test_captioning_experiments_have_the_papers_settings(tmp_path: Path) -> None:
    """Xu et al. 2015 (Sec. 4.2-4.3, 5.1) and Vinyals et al. 2015 (Sec. 3.1)."""
    sat = compose_config(tmp_path, "experiment=coco_sat", debug=False)
    assert (sat.task.name, sat.monitor) == ("captioning", "val/cider")
    assert (sat.model.encoder.backbone, sat.model.encoder.weights) == ("vgg19", "IMAGENET1K_V1")
    assert (sat.data.image_size, sat.data.resize) == (224, "stretch")
    decoder = sat.model.decoder
    assert (decoder.cell, decoder.gate, decoder.output_from) == ("lstm", True, "current")
    assert decoder.doubly_stochastic == 1.0 and decoder.maxout_pool == 1
    flickr = compose_config(tmp_path, "experiment=flickr8k_sat", debug=False)
    assert flickr.optimizer._target_ == "torch.optim.RMSprop"
    assert flickr.model.encoder.backbone == "vgg19"
    nic = compose_config(tmp_path, "experiment=coco_nic", debug=False)
    assert nic.model.decoder._target_.endswith("ContextDecoder")
    assert (nic.model.decoder.cell, nic.model.decoder.context_at) == ("lstm", "start")
    assert nic.model.encoder.freeze and nic.caption.finetune.blocks > 0


def test_debug_shrinks_captioning_data_whatever_the_data_set(tmp_path: Path) -> None:
    cfg = compose_config(tmp_path, "experiment=coco_sat")
    assert cfg.data.scenes.n_train < 100 and cfg.data.annotations is None
    assert cfg.model.encoder.weights is None and cfg.model.encoder.backbone == "resnet18"
    translation = compose_config(tmp_path, "experiment=synthetic_cho")
    assert translation.data.synthetic.n_train == 300
