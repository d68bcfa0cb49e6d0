"""Where a configuration's raw and prepared data live (cache keys by config hash)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from marketjepa.config import Config


def synth_hash(cfg: Config) -> str:
    """Hash of the synthetic-market parameters and generator model version (the output
    folder itself excluded), so a changed generator never reuses an old cached market."""
    from marketjepa.data.synthetic.params import SYNTH_MODEL_VERSION

    params = cfg.synth.model_dump(mode="json", exclude={"out_dir"})
    params["model_version"] = SYNTH_MODEL_VERSION
    return hashlib.sha256(json.dumps(params, sort_keys=True).encode()).hexdigest()[:12]


def synthetic_dir(cfg: Config) -> Path:
    """Raw files of the synthetic market for this config: ``<synth.out_dir>/<hash>/``.

    Different signal strengths, seeds or date ranges never overwrite each other.
    """
    return Path(cfg.synth.out_dir) / synth_hash(cfg)


def prepared_hash(cfg: Config) -> str:
    sections = ["data", "features", "labels", "split"]
    if cfg.data.source == "synthetic":
        return f"{synth_hash(cfg)}-{cfg.section_hash(*sections)[:12]}"
    return cfg.section_hash(*sections)


def prepared_dir(cfg: Config) -> Path:
    return Path(cfg.data.prepared_dir) / prepared_hash(cfg)
