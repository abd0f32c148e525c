"""``PolicyCheckpointData`` (entry point ``rlpath.policy``): a policy's torch state dict as a provenance node.

The file is ``torch.save`` output; the ``sha256`` attribute hashes the *content* (sorted keys, dtypes, shapes
and tensor bytes), because ``torch.save`` writes equal weights held in different tensors as different bytes.
Loading always uses ``weights_only=True`` and re-checks the hash, so a file that is not what its node says is
refused.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import io
import typing as t

from aiida import orm

__all__ = ('CheckpointHashMismatch', 'PolicyCheckpointData', 'state_dict_sha256')

FILENAME = 'policy.pt'


class CheckpointHashMismatch(ValueError):
    """The weights in a checkpoint's file do not hash to the node's ``sha256`` attribute."""


def state_dict_sha256(state_dict: t.Mapping[str, t.Any]) -> str:
    """Content hash of a state dict: keys in sorted order, each tensor's dtype, shape and bytes (on CPU)."""
    import torch

    digest = hashlib.sha256()
    for key in sorted(state_dict):
        value = state_dict[key]
        digest.update(key.encode())
        if isinstance(value, torch.Tensor):
            tensor = value.detach().to('cpu').contiguous()
            digest.update(f'{tensor.dtype}:{tuple(tensor.shape)}'.encode())
            digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes() if tensor.numel() else b'')
        else:
            digest.update(repr(value).encode())
    return digest.hexdigest()


def _versions() -> dict[str, str | None]:
    versions = {}
    for package in ('torch', 'e3nn', 'sevenn', 'aiida-rlpath'):
        try:
            versions[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            versions[package] = None
    return versions


class PolicyCheckpointData(orm.SinglefileData):
    """A policy checkpoint: torch state dict file plus ``sha256``, ``architecture`` and library ``versions``.

    Create with :meth:`from_state_dict` or, deduplicating by content hash, :meth:`get_or_create`.
    """

    @classmethod
    def from_state_dict(
        cls, state_dict: t.Mapping[str, t.Any], architecture: dict[str, t.Any] | None = None, **kwargs
    ) -> PolicyCheckpointData:
        """A new, unstored node holding ``state_dict``; ``architecture`` (JSON-serialisable) says how to rebuild
        the model the weights belong to."""
        import torch

        buffer = io.BytesIO()
        torch.save(dict(state_dict), buffer)
        buffer.seek(0)
        node = cls(buffer, filename=FILENAME, **kwargs)
        node.base.attributes.set('sha256', state_dict_sha256(state_dict))
        node.base.attributes.set('architecture', dict(architecture or {}))
        node.base.attributes.set('versions', _versions())
        node.base.attributes.set('parameters', int(sum(v.numel() for v in state_dict.values() if hasattr(v, 'numel'))))
        return node

    @classmethod
    def get_or_create(
        cls, state_dict: t.Mapping[str, t.Any], architecture: dict[str, t.Any] | None = None
    ) -> tuple[PolicyCheckpointData, bool]:
        """The stored checkpoint with these weights and architecture, or a new stored one; and whether it is new."""
        sha = state_dict_sha256(state_dict)
        wanted = dict(architecture or {})
        # filter by hash in the database; SQLite storage cannot compare JSON dictionaries, so match them here
        for existing in orm.QueryBuilder().append(cls, filters={'attributes.sha256': sha}).all(flat=True):
            if existing.architecture == wanted:
                return existing, False
        return cls.from_state_dict(state_dict, wanted).store(), True

    @property
    def sha256(self) -> str:
        """Content hash of the weights (see :func:`state_dict_sha256`)."""
        return self.base.attributes.get('sha256')

    @property
    def architecture(self) -> dict[str, t.Any]:
        """How to rebuild the model: a JSON dictionary written by the model's owner."""
        return self.base.attributes.get('architecture', {})

    def load_state_dict(self) -> dict[str, t.Any]:
        """The state dict, loaded with ``weights_only=True`` onto the CPU; raises :class:`CheckpointHashMismatch`
        if the weights do not hash to :attr:`sha256`."""
        import torch

        with self.open(mode='rb') as handle:
            state_dict = torch.load(io.BytesIO(handle.read()), weights_only=True, map_location='cpu')
        actual = state_dict_sha256(state_dict)
        if actual != self.sha256:
            raise CheckpointHashMismatch(f'checkpoint <{self.pk}>: weights hash to {actual}, node says {self.sha256}')
        return state_dict

    def validate(self) -> str | None:
        """A port-validator message when the checkpoint cannot be loaded or fails its hash, else ``None``."""
        try:
            self.load_state_dict()
        except Exception as exception:
            return f'invalid policy checkpoint <{self.pk}>: {type(exception).__name__}: {exception}'
        return None
