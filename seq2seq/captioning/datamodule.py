"""The Lightning data module for captioning: annotations and images in, caption batches out.

It reads a Karpathy split JSON or a CSV/JSONL table (or first writes the built-in synthetic
scenes), checks that every image exists and that its header reads as an image within
``max_image_pixels``, and builds the caption vocabulary from the training references, all in
:meth:`CaptionDataModule.prepare`, before a model is built. With a frozen backbone it caches the
CNN's feature maps on disk once (:mod:`seq2seq.captioning.feature_cache`), so that training
epochs run the decoder only.

Decoding every image is the costly part of checking them (minutes for a few thousand large
PNGs), and caching features decodes every image anyway. So an image is decoded once for both:
with ``skip_bad_images`` the pixel check is not a pass of its own in :meth:`prepare` (the model,
hence whether features are cached, is not known yet) but is left to :meth:`setup`, where the
caching pass doubles as the check (the cache lists the images that did not decode, so later
runs that read the cache decode nothing), and only data that is not cached gets a separate
decoding pass. The vocabulary is therefore built from the images whose header reads, whether
or not their pixels turn out corrupt later, which keeps it the same with and without a cache.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
from torch.utils.data import DataLoader

from seq2seq.captioning.annotations.reader import read_annotations
from seq2seq.captioning.annotations.records import AnnotationError, ImageRecord
from seq2seq.captioning.attention_correctness import ObjectWords
from seq2seq.captioning.cached_features import CachedFeatures
from seq2seq.captioning.dataset import CaptionDataset, ImageSource, collate_captions
from seq2seq.captioning.images import (
    DEFAULT_MAX_PIXELS,
    ImageError,
    PixelLimit,
    check_headers,
    check_images,
    read_header,
)
from seq2seq.captioning.sharded_cache import current_ranks
from seq2seq.data.loader import batch_loader
from seq2seq.data.sampler import BucketBatchSampler
from seq2seq.data.tokenizer import SentencePieceTokenizer, Tokenizer, WordTokenizer
from seq2seq.datasets.scenes import (
    COLOURS,
    JSON_NAME,
    SHAPES,
    SIZES,
    ScenesConfig,
    true_captions,
    write_scenes,
)
from seq2seq.models.encoders.cnn import CNNEncoder
from seq2seq.models.encoders.image_input import input_transform

log = logging.getLogger(__name__)

#: How the scenes' captions name their objects (see :mod:`seq2seq.datasets.scenes`).
SCENE_OBJECT_WORDS = ObjectWords(
    noun_key="shape",
    nouns=frozenset(SHAPES),
    adjectives={"colour": frozenset(COLOURS), "size": frozenset(SIZES)},
)

#: The module's split names; ``splits`` maps them to the names in the annotation file.
SPLITS = ("train", "dev", "test")


class CaptionDataModule(CachedFeatures, pl.LightningDataModule):
    """Images with reference captions, split into train/dev/test.

    Args:
        annotations: Karpathy JSON (``dataset_coco.json``...), or a ``.csv``/``.tsv``/
            ``.jsonl`` table of ``image,caption[,split]`` rows; with ``scenes``, defaults to
            the scenes' JSON.
        image_root: folder that image paths are relative to; defaults to the annotation
            file's folder.
        scenes: when set, the built-in synthetic scenes are first written to ``dir`` with
            these :class:`~seq2seq.datasets.scenes.ScenesConfig` values.
        dir: where the scenes are written.
        splits: the annotation file's name for each of ``train``, ``dev``, ``test``
            (Karpathy's files call the dev split ``val``).
        restval: Karpathy's ``restval`` images go to this split (``train``) or are dropped
            (``skip``).
        tokenizer: ``kind: word`` with ``min_freq`` (and optional ``max_size``), or
            ``kind: sentencepiece`` with ``vocab_size``.
        max_len: training captions are cut to this many tokens (and counted).
        image_size: side of the square the CNN sees.
        resize: ``crop`` (ImageNet centre crop) or ``stretch`` (the whole image).
        batch_size: training examples per batch: images (with ``captions_per_image``) or
            (image, caption) pairs.
        captions_per_image: each training image brings this many of its captions to a
            batch, so the CNN runs once for all of them (null: (image, caption) pairs).
        eval_batch_size: images per validation/test batch.
        on_missing: a listed image that does not exist: ``error`` (naming it) or ``skip``
            (dropped and counted).
        skip_bad_images: drop (and count) the images that are missing, empty, not images at
            all, over ``max_image_pixels``, truncated or corrupt: every image is decoded
            once before training (by the feature caching pass when features are cached);
            False: such a file is an error naming it (before training when its header shows
            it, else when it is first decoded).
        max_image_pixels: images with more pixels are refused as possible decompression
            bombs (an error naming the file, or dropped with ``skip_bad_images``); checked
            from every image's header in :meth:`prepare`, and wherever images are decoded.
            None: Pillow's limit (about 89 million).
        cache_features: cache the backbone's features on disk when the backbone is frozen.
        cache_dir: where; defaults to ``.feature_cache`` beside the annotations.
        cache_wait_s: with DDP, every rank caches the features of its share of the images
            and rank 0 assembles them: how long a rank waits for another's part before
            giving up with an error naming the missing file (a rank may have died).
        limit_images: keep only the first ``n`` images of a split (``{train: 1000}``), for
            quick runs.
        num_workers: DataLoader worker processes.
        seed: seed of the batch order.
    """

    def __init__(
        self,
        annotations: str | None = None,
        image_root: str | None = None,
        scenes: dict[str, Any] | None = None,
        dir: str | None = None,
        splits: dict[str, str] | None = None,
        restval: str = "train",
        tokenizer: dict[str, Any] | None = None,
        max_len: int | None = 30,
        image_size: int = 224,
        resize: str = "crop",
        batch_size: int = 64,
        captions_per_image: int | None = 5,
        eval_batch_size: int = 64,
        on_missing: str = "error",
        skip_bad_images: bool = False,
        max_image_pixels: int | None = DEFAULT_MAX_PIXELS,
        cache_features: bool = True,
        cache_dir: str | None = None,
        cache_wait_s: float = 3600.0,
        limit_images: dict[str, int] | None = None,
        num_workers: int = 0,
        seed: int = 0,
    ) -> None:
        super().__init__()
        if scenes is not None and dir is None:
            raise ValueError("data.scenes needs data.dir, the folder the scenes are written to")
        if annotations is None and scenes is None:
            raise ValueError("set data.annotations (a Karpathy JSON, CSV or JSONL file)")
        self.scenes = dict(scenes) if scenes is not None else None
        self.dir = Path(dir).expanduser() if dir is not None else None
        self.annotations = (
            Path(annotations).expanduser() if annotations else self.dir / JSON_NAME  # type: ignore[operator]
        )
        # The config key an error about the annotation file should name.
        self._annotations_key = "data.annotations" if annotations else "data.dir"
        self.image_root = Path(image_root).expanduser() if image_root else None
        self.splits = {"train": "train", "dev": "val", "test": "test", **(splits or {})}
        self.restval = restval
        self.tokenizer_cfg = {"kind": "word", "min_freq": 1, **(tokenizer or {})}
        self.max_len = max_len
        self.transform = input_transform(image_size, resize)
        self.image_size, self.resize = image_size, resize
        self.batch_size, self.eval_batch_size = batch_size, eval_batch_size
        self.captions_per_image = captions_per_image
        self.on_missing = on_missing
        self.skip_bad_images = skip_bad_images
        self.limit = PixelLimit(max_image_pixels, "data.max_image_pixels")
        #: images dropped per split (missing with on_missing=skip, or unreadable with
        #: skip_bad_images=true; those that do not decode are counted by setup)
        self.skipped_images: dict[str, int] = {}
        self.cache_features = cache_features
        self.cache_dir = Path(cache_dir).expanduser() if cache_dir else None
        if not cache_wait_s > 0:
            raise ValueError(f"data.cache_wait_s must be a positive number of seconds, got "
                             f"{cache_wait_s!r}")  # fmt: skip
        self.cache_wait_s = float(cache_wait_s)
        self.limit_images = dict(limit_images or {})
        self.num_workers = num_workers
        self.seed = seed
        #: The images of each split: after prepare, those whose file and header are fine;
        #: after setup, with skip_bad_images, without those whose pixels do not decode.
        self.records: dict[str, list[ImageRecord]] = {}
        #: The records as prepare left them (the feature cache is keyed and laid out by them).
        self._listed: dict[str, list[ImageRecord]] = {}
        #: Per split, what prepare dropped, and (row in _listed, error) of each image of a
        #: decoding pass that did not decode.
        self._dropped_early: dict[str, int] = {}
        self._undecodable: dict[str, list[tuple[int, str]]] = {}
        self.datasets: dict[str, CaptionDataset] = {}
        self.tokenizer: Tokenizer | None = None
        self._extractor: CNNEncoder | None = None
        self._feature_settings: dict[str, Any] = {}
        self._cache_paths: dict[str, Path] = {}

    # --- reading --------------------------------------------------------------------------
    def prepare(self) -> Tokenizer:
        """Write the scenes if configured, read and check every split, and build the caption
        vocabulary from the training references. Idempotent."""
        if self.tokenizer is not None:
            return self.tokenizer
        if self.scenes is not None:
            write_scenes(self.dir, ScenesConfig(**self.scenes))  # type: ignore[arg-type]
        root = self._check_paths()
        records = read_annotations(self.annotations, root, restval=self.restval)
        by_split: dict[str, list[ImageRecord]] = {}
        for record in records:
            by_split.setdefault(record.split, []).append(record)
        for split in SPLITS:
            name = self.splits[split]
            chosen = by_split.get(name, [])
            if split in self.limit_images:
                chosen = chosen[: self.limit_images[split]]
            chosen = self._drop_bad_images(split, chosen, root)
            if not chosen:
                found = ", ".join(f"{k} ({len(v)})" for k, v in sorted(by_split.items()))
                raise ValueError(
                    f"{self.annotations}: no images in split {name!r} (data.splits.{split}); "
                    f"the file has: {found or 'no images'}"
                )
            self.records[split] = self._listed[split] = chosen
            log.info("%s: %d images from %s", split, len(chosen), self.annotations)
        self.tokenizer = self._build_tokenizer(
            [c for r in self.records["train"] for c in r.captions]
        )
        log.info("caption vocabulary: %d", self.tokenizer.vocab_size)
        return self.tokenizer

    def _check_paths(self) -> Path:
        """Check that the annotation file and image folder exist; returns the image root."""
        if not self.annotations.is_file():
            what = "no such file" if not self.annotations.exists() else "not a file"
            raise AnnotationError(
                f"{self._annotations_key}={self.annotations}: {what} (expected a Karpathy "
                "split JSON, or a CSV/TSV/JSONL table of image,caption[,split] rows)"
            )
        if self.image_root is not None and not self.image_root.is_dir():
            what = "no such folder" if not self.image_root.exists() else "not a folder"
            raise ImageError(
                f"data.image_root={self.image_root}: {what} (expected the folder that the "
                f"image paths in {self.annotations} are relative to)"
            )
        return self.image_root or self.annotations.parent

    def _drop_bad_images(
        self, split: str, records: list[ImageRecord], root: Path
    ) -> list[ImageRecord]:
        """The records whose image file exists and whose header reads within the pixel limit;
        the others are an error or, as configured, dropped and counted. (Pixels are checked
        in :meth:`setup`, see the module docstring.)"""
        on_missing = "skip" if self.skip_bad_images else self.on_missing
        try:
            kept, missing = check_images(records, on_missing=on_missing)
        except ImageError as err:
            key = "data.image_root" if self.image_root is not None else self._annotations_key
            raise ImageError(
                f"{err}, or data.skip_bad_images=true to drop any bad image (image root: "
                f"{root}, from {key})"
            ) from None
        if missing:
            log.warning(
                "%s: skipped %d images that are missing or empty (first: %s)",
                split, len(missing), missing[0].path,
            )  # fmt: skip
        kept, bad = check_headers(kept, self.limit, what=f"{split}: reading image headers")
        if bad and not self.skip_bad_images:
            raise ImageError(
                f"{bad[0][1]}; {len(bad)} of {len(records)} images of split {split!r} cannot "
                "be used (data.skip_bad_images=true drops such images)"
            )
        if bad:
            log.warning(
                "%s: skipped %d images that are not readable images or are over "
                "data.max_image_pixels=%s (data.skip_bad_images=true); first: %s",
                split, len(bad), self.limit.pixels, bad[0][1],
            )  # fmt: skip
        self.skipped_images[split] = self._dropped_early[split] = len(missing) + len(bad)
        return kept

    def _build_tokenizer(self, texts: list[str]) -> Tokenizer:
        cfg = dict(self.tokenizer_cfg)
        kind = cfg.pop("kind")
        try:
            if kind == "word":
                return WordTokenizer.build(
                    texts, max_size=cfg.pop("max_size", None), min_freq=cfg.pop("min_freq", 1)
                )
            if kind == "sentencepiece":
                return SentencePieceTokenizer.train(texts, cfg.pop("vocab_size", 4000), **cfg)
        except (TypeError, ValueError) as err:
            raise ValueError(f"data.tokenizer ({self.tokenizer_cfg}): {err}") from err
        raise ValueError(f"data.tokenizer.kind must be 'word' or 'sentencepiece', got {kind!r}")

    def references(self, split: str) -> list[list[str]]:
        """Reference captions of each image of ``split``, in data set order."""
        return [list(r.captions) for r in self.records[split]]

    def objects(self, split: str) -> list[list[dict[str, Any]]]:
        """Object boxes of each image (empty lists where the annotations have none)."""
        return [list(r.objects) for r in self.records[split]]

    @property
    def object_words(self) -> ObjectWords | None:
        """The words that name the annotated objects, for attention correctness: the object
        records known here are the synthetic scenes' (``shape``, ``colour``, ``size``)."""
        has_shapes = any(
            "shape" in obj
            for records in self.records.values()
            for r in records
            for obj in r.objects
        )
        return SCENE_OBJECT_WORDS if has_shapes else None

    def original_sizes(self, split: str) -> list[tuple[int, int]]:
        """``(width, height)`` of each image file of ``split`` (read from the headers)."""
        return [read_header(record.path, self.limit)[1] for record in self.records[split]]

    def judge_captions(self, split: str, captions: list[str]) -> list[bool] | None:
        """Whether each caption is a true description of its image, for the synthetic scenes
        (one of the captions their grammar can say of it); None for other data."""
        if self.scenes is None:
            return None
        sizes = self.original_sizes(split)
        return [
            caption in true_captions(record.objects, size[0])
            for caption, record, size in zip(captions, self.records[split], sizes, strict=True)
        ]

    def prepare_data(self) -> None:
        # Runs on one process per node before setup. In one process, the caches are written
        # here; with DDP, setup (on every rank) writes them, each rank its share.
        self.prepare()
        if current_ranks().world == 1:
            for split in SPLITS:
                self._features(split)

    def setup(self, stage: str | None = None) -> None:
        tokenizer = self.prepare()
        for split in SPLITS:
            if split in self.datasets:
                continue
            features, rows = self._resolve(split)
            source = ImageSource(
                self.records[split], self.transform, features, rows=rows, limit=self.limit
            )
            dataset = CaptionDataset(
                source,
                tokenizer,
                captions_per_image=self.captions_per_image if split == "train" else 0,
                max_len=self.max_len if split == "train" else None,
            )
            if dataset.truncated:
                log.info("%s: cut %d captions to %d tokens", split, dataset.truncated, self.max_len)
            self.datasets[split] = dataset

    # --- loaders --------------------------------------------------------------------------
    def _loader(self, split: str, shuffle: bool) -> DataLoader:
        dataset = self.datasets[split]
        size = self.batch_size if shuffle else self.eval_batch_size
        sampler = BucketBatchSampler(
            dataset.lengths, batch_size=size, shuffle=shuffle, seed=self.seed
        )
        collate_fn = _Collate(dataset.source.is_features)
        return batch_loader(dataset, sampler, collate_fn, self.num_workers, train=shuffle)

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("dev", shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", shuffle=False)


class _Collate:
    """A picklable collate function (worker processes pickle it)."""

    def __init__(self, features: bool) -> None:
        self.features = features

    def __call__(self, examples):  # type: ignore[no-untyped-def]
        return collate_captions(examples, self.features)
