"""The captioning pipeline around the shared core: NIC's image-at-start decoder, image-grouped
batches, the feature cache, the data module and the Lightning module's loss."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from seq2seq.captioning.annotations.records import ImageRecord
from seq2seq.captioning.datamodule import CaptionDataModule
from seq2seq.captioning.dataset import CaptionDataset, ImageSource, collate_captions
from seq2seq.captioning.feature_cache import cache_key, compute_features, load_features
from seq2seq.captioning.images import load_image
from seq2seq.captioning.module import CaptioningModule
from seq2seq.core import EncoderOutput
from seq2seq.data.tokenizer import BOS, EOS, PAD, WordTokenizer
from seq2seq.models.decoders.context import ContextDecoder
from seq2seq.models.encoders.cnn import CNNEncoder

SCENES = {"n_train": 12, "n_val": 4, "n_test": 4, "image_size": 48, "captions_per_image": 3}
MODEL = {
    "encoder": {
        "_target_": "seq2seq.models.encoders.cnn.CNNEncoder",
        "backbone": "resnet18",
        "project_dim": 8,
    },
    "decoder": {
        "_target_": "seq2seq.models.decoders.bahdanau.BahdanauDecoder",
        "embed_dim": 8,
        "hidden_dim": 8,
        "attention_dim": 8,
        "maxout_dim": 8,
        "cell": "lstm",
        "gate": True,
        "output_from": "current",
        "maxout_pool": 1,
        "doubly_stochastic": 1.0,
    },
    "init": "pytorch",
}


def test_nic_feeds_the_image_once_before_the_first_word() -> None:
    torch.manual_seed(0)
    decoder = ContextDecoder(11, 5, embed_dim=4, hidden_dim=3, maxout_dim=2, cell="lstm",
                             context_at="start", maxout_pool=1)  # fmt: skip
    summary = torch.randn(2, 5)
    enc = EncoderOutput(torch.randn(2, 1, 5), torch.ones(2, 1, dtype=torch.bool), summary)
    state = decoder.init_state(enc)
    # x_{-1} = W_e' CNN(I) enters the LSTM from a zero state, with no context term.
    x = decoder.input_proj(decoder.image_proj(summary))
    zero = {"h": torch.zeros(2, 3), "memory": torch.zeros(2, 3)}
    expected = decoder.cell(x, torch.zeros(2, 12), zero)
    torch.testing.assert_close(state["h"], expected["h"])
    torch.testing.assert_close(state["memory"], expected["memory"])
    # Afterwards the image is nowhere: changing it after the start changes nothing.
    prev = torch.tensor([[BOS, 5, 6], [BOS, 7, 4]])
    out = decoder.step(prev[:, 0], state, enc)
    other = EncoderOutput(enc.annotations, enc.mask, torch.randn(2, 5))
    torch.testing.assert_close(decoder.step(prev[:, 0], state, other).logits, out.logits)
    assert decoder.context_proj is None and decoder.init_proj is None
    with pytest.raises(ValueError, match="context_at"):
        ContextDecoder(11, 5, context_at="middle")


def _records(tmp_path: Path, n: int = 3) -> list[ImageRecord]:
    from PIL import Image

    records = []
    for i in range(n):
        path = tmp_path / f"img{i}.png"
        Image.new("RGB", (40, 30), (40 * i, 100, 200)).save(path)
        captions = tuple(f"a shape number {i} {'big ' * k}".strip() for k in range(i + 1))
        records.append(ImageRecord(f"img{i}", path, "train", captions))
    return records


def test_image_grouped_batches_repeat_the_encoder_output(tmp_path: Path) -> None:
    records = _records(tmp_path)
    tokenizer = WordTokenizer.build(c for r in records for c in r.captions)
    source = ImageSource(records, lambda image: torch.tensor(image.getpixel((0, 0))).float())
    grouped = CaptionDataset(source, tokenizer, captions_per_image=2)
    assert len(grouped) == 3  # images
    batch = collate_captions([grouped[i] for i in range(3)], features=False)
    # Image 0 has one caption, images 1 and 2 bring two of theirs.
    assert batch.image_rows.tolist() == [0, 1, 1, 2, 2]
    assert batch.tgt_in.shape[0] == 5 and (batch.tgt_in[:, 0] == BOS).all()
    assert ((batch.tgt_out == EOS).sum(1) == 1).all()
    pairs = CaptionDataset(source, tokenizer, captions_per_image=None)
    assert len(pairs) == 1 + 2 + 3
    assert collate_captions([pairs[i] for i in range(3)], features=False).image_rows is None
    first_only = CaptionDataset(source, tokenizer, captions_per_image=0, max_len=3)
    assert [len(c) for c in first_only.captions] == [1, 1, 1]
    assert first_only.truncated == 3  # "a shape number i" has four words


def test_feature_cache_matches_the_backbone(tmp_path: Path) -> None:
    from seq2seq.models.encoders.image_input import input_transform

    torch.manual_seed(0)
    encoder = CNNEncoder("resnet18", freeze=True)
    records = _records(tmp_path)
    transform = input_transform(32, "stretch")
    path = compute_features(encoder, records, transform, tmp_path / "c" / "x.npy", batch_size=2)
    cached = load_features(path, 3)
    assert cached.dtype == np.float16 and cached.shape == (3, 512, 1, 1)
    direct = encoder.extract(torch.stack([transform(load_image(r.path)) for r in records]))
    torch.testing.assert_close(torch.from_numpy(cached.astype(np.float32)), direct,
                               atol=1e-2, rtol=1e-2)  # fmt: skip
    assert not list((tmp_path / "c").glob(".*tmp"))  # the temporary file was renamed
    with pytest.raises(ValueError, match="expected 4 maps"):
        load_features(path, 4)
    key = cache_key(records, {"size": 32})
    assert key == cache_key(records, {"size": 32}) != cache_key(records, {"size": 64})
    unfrozen = CNNEncoder("resnet18", freeze=False)
    with pytest.raises(ValueError, match="frozen"):
        compute_features(unfrozen, records, transform, tmp_path / "y.npy")


@pytest.fixture(scope="module")
def datamodule(tmp_path_factory: pytest.TempPathFactory) -> CaptionDataModule:
    base = tmp_path_factory.mktemp("scenes")
    dm = CaptionDataModule(scenes=SCENES, dir=str(base / "scenes"), image_size=48,
                           resize="stretch", batch_size=4, captions_per_image=2,
                           eval_batch_size=4)  # fmt: skip
    dm.prepare()
    return dm


def test_datamodule_reads_scenes_and_caches_features(datamodule: CaptionDataModule) -> None:
    assert [len(datamodule.records[s]) for s in ("train", "dev", "test")] == [12, 4, 4]
    assert all(len(refs) == 3 for refs in datamodule.references("dev"))
    assert all(objs for objs in datamodule.objects("test"))
    assert datamodule.original_sizes("test") == [(48, 48)] * 4
    first_refs = [refs[0] for refs in datamodule.references("test")]
    assert datamodule.judge_captions("test", first_refs) == [True] * 4
    assert datamodule.judge_captions("test", ["a large star and a circle"] * 4) == [False] * 4
    torch.manual_seed(0)
    module = CaptioningModule(MODEL, datamodule.tokenizer, torch.optim.Adam)
    datamodule.set_feature_extractor(module.encoder)
    datamodule.datasets.clear()
    datamodule.setup("fit")
    cached = next(iter(datamodule.train_dataloader()))
    assert cached.features and cached.images.shape[1:] == (512, 2, 2)
    cache_dir = datamodule.annotations.parent / ".feature_cache"
    assert len(list(cache_dir.glob("*.npy"))) == 3
    # The same batch from pixels gives the same loss: the cache only skips work.
    source = datamodule.datasets["train"].source
    records = [source.records[i] for i in cached.indices.tolist()]
    images = torch.stack([source.transform(load_image(r.path)) for r in records])
    module.eval()
    with torch.no_grad():
        from_cache, tokens = module.loss(cached)
        from_pixels, _ = module.loss(cached._replace(images=images, features=False))
    assert tokens == (cached.tgt_out != PAD).sum()
    torch.testing.assert_close(from_cache, from_pixels, rtol=1e-2, atol=1e-2)


def test_datamodule_errors_name_the_problem(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="data.annotations"):
        CaptionDataModule()
    table = tmp_path / "caps.csv"
    table.write_text("image,caption,split\nmissing.png,a cat,train\n")
    with pytest.raises(Exception, match="missing.png"):
        CaptionDataModule(annotations=str(table)).prepare()
    dm = CaptionDataModule(annotations=str(table), on_missing="skip")
    with pytest.raises(ValueError, match="no images in split 'train'"):
        dm.prepare()


def test_backbone_gets_its_own_learning_rate_and_finetune_stage() -> None:
    from functools import partial

    cfg = {**MODEL, "encoder": {**MODEL["encoder"], "freeze": True}}
    tokenizer = WordTokenizer(["a", "b"])
    module = CaptioningModule(cfg, tokenizer, partial(torch.optim.Adam, lr=0.01),
                              backbone_lr_scale=0.1, finetune_epoch=1,
                              finetune_blocks=2)  # fmt: skip
    optimizer = module.configure_optimizers()
    rates = [group["lr"] for group in optimizer.param_groups]
    assert rates == [0.01, pytest.approx(0.001)]
    backbone = {id(p) for p in module.encoder.backbone.parameters()}
    assert {id(p) for p in optimizer.param_groups[1]["params"]} == backbone
    assert module.encoder.grad_free
    module.encoder.set_trainable_blocks(2)  # what the epoch-1 hook does
    trainable = [p for p in optimizer.param_groups[1]["params"] if p.requires_grad]
    assert trainable and not module.encoder.grad_free
    with pytest.raises(ValueError, match="finetune.blocks"):
        CaptioningModule(cfg, tokenizer, partial(torch.optim.Adam, lr=0.01),
                         finetune_epoch=1, finetune_blocks=0)  # fmt: skip
    text = {**MODEL, "encoder": {"_target_": "seq2seq.models.encoders.rnn.BiGRUEncoder",
                                 "embed_dim": 4, "hidden_dim": 4}}  # fmt: skip
    with pytest.raises(ValueError, match="CNNEncoder"):
        CaptioningModule(text, tokenizer, torch.optim.Adam)


def test_attention_decoder_can_start_from_zeros() -> None:
    from seq2seq.models.decoders.bahdanau import BahdanauDecoder

    decoder = BahdanauDecoder(9, 4, 4, embed_dim=3, hidden_dim=5, attention_dim=3, maxout_dim=2,
                              cell="lstm", init_from_summary=False)  # fmt: skip
    enc = EncoderOutput(torch.randn(2, 6, 4), torch.ones(2, 6, dtype=torch.bool), torch.randn(2, 4))
    state = decoder.init_state(enc)
    assert decoder.init_proj is None
    assert not state["h"].any() and not state["memory"].any()
    assert decoder(torch.tensor([[BOS, 5], [BOS, 6]]), enc).logits.shape == (2, 2, 9)


@pytest.mark.parametrize("scheme", ["bahdanau", "pytorch"])
def test_forget_bias_survives_initialisation(scheme: str) -> None:
    from seq2seq.model import build_model

    decoder = {**MODEL["decoder"], "_target_": "seq2seq.models.decoders.context.ContextDecoder",
               "forget_bias": 1.0}  # fmt: skip
    for key in ("attention_dim", "gate", "output_from", "doubly_stochastic"):
        decoder.pop(key)
    torch.manual_seed(0)
    plain = build_model({**MODEL, "decoder": {**decoder, "forget_bias": 0.0}, "init": scheme},
                        0, 9)  # fmt: skip
    torch.manual_seed(0)
    biased = build_model({**MODEL, "decoder": decoder, "init": scheme}, 0, 9)
    diff = biased.decoder.input_proj.bias - plain.decoder.input_proj.bias  # i, f, o, g blocks
    torch.testing.assert_close(diff, torch.tensor([0.0] * 8 + [1.0] * 8 + [0.0] * 16))
