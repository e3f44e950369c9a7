"""Cached CNN features for the captioning data module, and the images they let it drop.

With a frozen backbone, each split's feature maps are computed once into a float16 memory
map (:mod:`seq2seq.captioning.feature_cache`) and every epoch and later run reads them
instead of the images. The caching pass decodes every image anyway, so with
``data.skip_bad_images`` it is also the check of which images decode (listed beside the
cache); without a cache a decoding pass of its own does that check.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from seq2seq.captioning.annotations.records import ImageRecord
from seq2seq.captioning.feature_cache import (
    cache_key,
    compute_features,
    encoder_settings,
    load_features,
    load_unreadable,
    unreadable_path,
)
from seq2seq.captioning.images import (
    ImageError,
    find_unreadable_images,
)
from seq2seq.captioning.sharded_cache import compute_sharded, current_ranks
from seq2seq.models.encoders.cnn import CNNEncoder

log = logging.getLogger(__name__)


class CachedFeatures:
    """The feature-cache part of :class:`~seq2seq.captioning.datamodule.CaptionDataModule`.

    It reads the data module's settings (``cache_features``, ``cache_dir``, ``cache_wait_s``,
    ``annotations``, ``transform``, ``eval_batch_size``, ``limit``, ``skip_bad_images``) and
    the images each
    split lists (``_listed``), and settles ``records``, ``skipped_images`` and the cache state
    (``_extractor``, ``_feature_settings``, ``_cache_paths``, ``_undecodable``) that the data
    module's constructor initialises.
    """

    def set_feature_extractor(self, encoder: CNNEncoder) -> None:
        """Cache ``encoder``'s backbone features (it must stay frozen for the whole run)."""
        if not encoder.grad_free:
            raise ValueError("feature caching needs a frozen backbone (trainable_blocks=0)")
        self._extractor = encoder
        # Hashed once here: the key hashes every backbone weight, and every image file is
        # stat'ed per split, which prepare_data and setup would otherwise both redo.
        self._feature_settings = {
            **encoder_settings(encoder),
            "image_size": self.image_size,
            "resize": self.resize,
        }
        self._cache_paths.clear()

    def _cache_path(self, split: str) -> Path:
        if split not in self._cache_paths:
            key = cache_key(self._listed[split], self._feature_settings)
            folder = self.cache_dir or self.annotations.parent / ".feature_cache"
            self._cache_paths[split] = folder / f"{split}-{key}.npy"
        return self._cache_paths[split]

    def _features(self, split: str) -> tuple[np.ndarray, list[tuple[int, str]]] | None:
        """The split's cached features (computed first if need be) and the images that did not
        decode while they were computed; None when features are not cached."""
        if self._extractor is None or not self.cache_features:
            return None
        listed = self._listed[split]
        path = self._cache_path(split)
        if not path.is_file():
            self._compute(split, listed, path)
        features = load_features(path, len(listed))
        undecodable = load_unreadable(path)
        if any(not 0 <= row < len(listed) for row, _ in undecodable):
            raise ValueError(
                f"feature cache listing {unreadable_path(path)} names images that {path} does "
                "not have; delete both to recompute"
            )
        return features, undecodable

    def _compute(self, split: str, listed: list[ImageRecord], path: Path) -> None:
        """Write the split's cache: in one process, or with DDP each rank its share of the
        images, assembled by rank 0 (:mod:`~seq2seq.captioning.sharded_cache`)."""
        device = self.trainer.strategy.root_device if self.trainer is not None else "cpu"
        ranks = current_ranks()

        def compute(records: Sequence[ImageRecord], out: Path) -> None:
            what = f"{split}: caching CNN features"
            if ranks.world > 1:
                what += f" (rank {ranks.rank} of {ranks.world})"
            try:
                compute_features(
                    self._extractor,  # type: ignore[arg-type]
                    records,
                    self.transform,
                    out,
                    batch_size=self.eval_batch_size,
                    device=device,
                    limit=self.limit,
                    # The check of skip_bad_images: this pass decodes every image anyway.
                    skip_unreadable=self.skip_bad_images,
                    what=what,
                )
            except ImageError as err:
                if self.skip_bad_images:
                    raise
                raise ImageError(f"{err} (data.skip_bad_images=true drops such images)") from None

        log.info("%s: caching backbone features of %d images in %s", split, len(listed),
                 path)  # fmt: skip
        if ranks.world == 1:
            compute(listed, path)
        else:
            compute_sharded(
                compute, listed, path, ranks, self.eval_batch_size, wait_s=self.cache_wait_s
            )

    def _resolve(self, split: str) -> tuple[np.ndarray | None, list[int] | None]:
        """Settle the split's images: with skip_bad_images, drop those whose pixels do not
        decode (found by the caching pass, or by a decoding pass of their own when features are
        not cached). Returns the cached features, if any, and the feature row of each kept
        image (None when row ``i`` is image ``i``)."""
        listed = self._listed[split]
        cached = self._features(split)
        features, undecodable = cached if cached is not None else (None, [])
        if cached is None and self.skip_bad_images:
            if split not in self._undecodable:
                what = f"{split}: decoding images to check them"
                _, bad = find_unreadable_images(listed, self.limit, what=what)
                position = {id(record): row for row, record in enumerate(listed)}
                self._undecodable[split] = [(position[id(r)], error) for r, error in bad]
            undecodable = self._undecodable[split]
        if undecodable and not self.skip_bad_images:
            # A cache written by a run that had skip_bad_images=true.
            raise ImageError(
                f"{undecodable[0][1]}; {len(undecodable)} images of split {split!r} do not "
                "decode (data.skip_bad_images=true drops such images)"
            )
        dropped = {row for row, _ in undecodable}
        rows = [row for row in range(len(listed)) if row not in dropped]
        self.records[split] = [listed[row] for row in rows]
        self.skipped_images[split] = self._dropped_early[split] + len(dropped)
        if undecodable:
            log.warning(
                "%s: skipped %d images that cannot be decoded (data.skip_bad_images=true); "
                "first: %s", split, len(undecodable), undecodable[0][1],
            )  # fmt: skip
        if not rows:
            raise ImageError(
                f"{undecodable[0][1]}; none of the {len(listed)} images of split {split!r} decodes"
            )
        return features, rows if features is not None and dropped else None
