"""PolicyCheckpointData: content hash, deduplication, weights_only loading, and refusal of tampered files."""

from __future__ import annotations

import importlib.metadata
import io
import pickle

import pytest
import torch

from aiida_rlpath.data.policy import CheckpointHashMismatch, PolicyCheckpointData, state_dict_sha256


def _weights(seed: int) -> dict[str, torch.Tensor]:
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(6, 4), torch.nn.Tanh(), torch.nn.Linear(4, 2)).state_dict()


ARCH = {'model': 'mlp', 'layers': [6, 4, 2]}


def test_content_hash_ignores_tensor_identity_but_not_values():
    weights = _weights(0)
    cloned = {key: value.clone() for key, value in weights.items()}
    assert state_dict_sha256(weights) == state_dict_sha256(cloned)
    cloned['0.bias'][0] += 1e-6
    assert state_dict_sha256(weights) != state_dict_sha256(cloned)


def test_entry_point_and_round_trip(aiida_profile_clean):
    from aiida.plugins import DataFactory

    assert DataFactory('rlpath.policy') is PolicyCheckpointData
    weights = _weights(1)
    node = PolicyCheckpointData.from_state_dict(weights, ARCH).store()
    loaded = PolicyCheckpointData.collection.get(pk=node.pk).load_state_dict()
    assert loaded.keys() == weights.keys()
    assert all(torch.equal(loaded[key], weights[key]) for key in weights)
    assert node.architecture == ARCH
    assert node.base.attributes.get('versions')['torch'] == importlib.metadata.version('torch')
    assert node.base.attributes.get('parameters') == 6 * 4 + 4 + 4 * 2 + 2


def test_get_or_create_deduplicates_by_content(aiida_profile_clean):
    first, created = PolicyCheckpointData.get_or_create(_weights(2), ARCH)
    again, created_again = PolicyCheckpointData.get_or_create({k: v.clone() for k, v in _weights(2).items()}, ARCH)
    other, created_other = PolicyCheckpointData.get_or_create(_weights(3), ARCH)
    assert created and not created_again and created_other
    assert again.pk == first.pk and other.pk != first.pk
    renamed, created_renamed = PolicyCheckpointData.get_or_create(_weights(2), {'model': 'other'})
    assert created_renamed and renamed.pk != first.pk  # same weights, different model: a different checkpoint


def test_tampered_checkpoint_is_refused(aiida_profile_clean):
    node = PolicyCheckpointData.from_state_dict(_weights(4), ARCH)
    node.base.attributes.set('sha256', state_dict_sha256(_weights(5)))  # the node claims other weights
    node.store()
    with pytest.raises(CheckpointHashMismatch, match='weights hash to'):
        node.load_state_dict()
    assert 'invalid policy checkpoint' in node.validate()


class _NotWeights:
    """Anything that is not tensors: weights_only loading must refuse to unpickle it."""


def test_loading_refuses_arbitrary_pickles(aiida_profile_clean):
    buffer = io.BytesIO()
    torch.save({'payload': _NotWeights()}, buffer, pickle_module=pickle)
    buffer.seek(0)
    node = PolicyCheckpointData(buffer, filename='policy.pt')
    node.base.attributes.set('sha256', 'not checked before unpickling')
    node.store()
    with pytest.raises(pickle.UnpicklingError):
        node.load_state_dict()
