"""Read W&B's offline run files (run-<id>.wandb) back, as W&B would upload them: what the tests
assert a dashboard gets. The file is W&B's LevelDB-style log: a 7-byte header (":W&B", a magic
number, a version), then 32 KiB blocks of records (a 7-byte header: checksum, length, type: full,
first, middle or last piece), each record a serialized wandb_internal_pb2.Record."""

import json
import struct
from pathlib import Path

BLOCK = 32768
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4


def records(path: Path):
    from wandb.proto import wandb_internal_pb2 as pb

    data = Path(path).read_bytes()
    assert data[:4] == b":W&B", f"{path} is not a W&B run file"
    pos, pending = 7, b""
    while pos + 7 <= len(data):
        if BLOCK - pos % BLOCK < 7:  # a block's tail too short for a record header is padding
            pos += BLOCK - pos % BLOCK
            continue
        _, length, kind = struct.unpack("<IHB", data[pos:pos + 7])
        pos += 7
        if kind == 0 and length == 0:
            break
        chunk, pos = data[pos:pos + length], pos + length
        if kind == FULL:
            yield pb.Record.FromString(chunk)
        elif kind == FIRST:
            pending = chunk
        elif kind == MIDDLE:
            pending += chunk
        elif kind == LAST:
            yield pb.Record.FromString(pending + chunk)
            pending = b""


def _key(item) -> str:
    return item.key or "/".join(item.nested_key)


class OfflineRun:
    """One offline W&B run: its group, job type, tags, config, summary and history rows."""

    def __init__(self, path: Path):
        self.config, self.summary, self.history = {}, {}, []
        for r in records(path):
            kind = r.WhichOneof("record_type")
            if kind == "run":
                self.name, self.group, self.job_type = r.run.display_name, r.run.run_group, r.run.job_type
                self.tags = list(r.run.tags)
                for item in r.run.config.update:
                    self.config[_key(item)] = json.loads(item.value_json)
            elif kind == "config":
                for item in r.config.update:
                    self.config[_key(item)] = json.loads(item.value_json)
            elif kind == "summary":
                for item in r.summary.update:
                    self.summary[_key(item)] = json.loads(item.value_json)
            elif kind == "history":
                self.history.append({_key(item): json.loads(item.value_json) for item in r.history.item})

    def value(self, key: str):
        """A config value: W&B stores each top-level key with its value under "value"."""
        entry = self.config[key]
        return entry["value"] if isinstance(entry, dict) and "value" in entry else entry


def offline_runs(folder: Path) -> list[OfflineRun]:
    return [OfflineRun(p) for p in sorted(Path(folder).glob("wandb/offline-run-*/run-*.wandb"))]
