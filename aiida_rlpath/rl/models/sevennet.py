"""``SevenNetPolicy``: the REALIZE actor-critic on the pretrained SevenNet-0 backbone (torch + e3nn, no AiiDA).

The O2's local environment (every atom within ``radius`` Å of its centre, periodic images included, as a cluster)
goes through SevenNet-0's embedding and its first four interaction blocks, the ones whose node features are
equivariant (128x0e + 64x1e + 32x2e; the fifth block keeps scalars only, for the energy). The features of the two
O atoms are summed (the molecule is homonuclear) and a linear map per degree projects them onto ``backbone_channels``
moments of degree 0, 1, 2, which join the environmental multipoles of :class:`MultipolePolicy` as extra channels:
every head of that policy then reads both.

- The last ``trainable_layers`` interaction blocks fine-tune, at ``backbone_lr_scale`` × the learning rate; the
  blocks before them are frozen (and their output is cached per state, so a PPO epoch reruns only the tuned ones).
- A frozen copy of the pretrained tuned blocks serves the critic: the value is an MLP of the O atoms' pretrained
  scalar features and the multipole invariants, so the critic's target does not move with the actor's backbone.
- Checkpoints hold the tuned blocks and the heads; the frozen weights are rebuilt from the checkpoint shipped in
  ``sevenn`` (named in ``architecture``, sha256-checked), never downloaded.

SevenNet-0's irreps carry no parity (its l = 1 features are labelled 1e), so this encoder is equivariant under
rotations and translations (SE(3)); the multipole encoder alone is also equivariant under inversion. SevenNet runs
in float32; its features are promoted to float64 for the heads. Lengths in Å.
"""

from __future__ import annotations

import copy
import functools
import hashlib
import typing as t

import numpy as np
import torch
from e3nn import o3

from aiida_rlpath.rl.models.equivariant import MultipolePolicy, _invariants, _mlp

__all__ = ('SevenNetPolicy', 'pretrained_backbone')

#: Interaction blocks of SevenNet-0 whose outputs are equivariant (the fifth outputs scalars only).
EQUIVARIANT_BLOCKS = 4


@functools.lru_cache(maxsize=2)
def pretrained_backbone(checkpoint: str = '7net-0'):
    """(SevenNet model on CPU in eval mode, its cutoff in Å, sha256 of the checkpoint file), loaded once per
    process from the checkpoint shipped inside ``sevenn``."""
    from sevenn import util

    from aiida_rlpath.physics.runtime import sevennet_checkpoint

    path = sevennet_checkpoint(checkpoint)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    loaded = util.load_checkpoint(str(path))
    model = loaded.build_model()
    model.set_is_batch_data(False)
    model.eval()
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    return model, float(loaded.config['cutoff']), digest


class SevenNetPolicy(MultipolePolicy):
    """:class:`MultipolePolicy` whose heads also read SevenNet-0 features of the O2 (see the module docstring).

    :param radius: the cluster cut around the O2 centre for the backbone, Å; at most ``cutoff`` (the neighbours
        the policy sees), else ``ValueError``.
    :param backbone_channels: moments per degree projected from the backbone.
    :param trainable_layers: how many of the last equivariant interaction blocks fine-tune (0: all frozen).
    :param backbone_lr_scale: their learning rate relative to the heads'.
    :param checkpoint: the SevenNet checkpoint shipped in ``sevenn``; ``checkpoint_sha256`` pins its bytes.

    Other parameters as :class:`MultipolePolicy`.
    """

    name = 'sevennet'

    def __init__(
        self,
        d_max: float = 2.0,
        cutoff: float = 6.0,
        lmax: int = 2,
        channels: int = 8,
        hidden: int = 32,
        grid: int = 400,
        radial: int = 8,
        radius: float = 6.0,
        backbone_channels: int = 8,
        trainable_layers: int = 1,
        backbone_lr_scale: float = 0.1,
        checkpoint: str = '7net-0',
        checkpoint_sha256: str | None = None,
    ):
        if lmax != 2:
            raise ValueError('the SevenNet backbone gives features of degree 0, 1 and 2: lmax must be 2')
        if not 0 < radius <= cutoff:
            raise ValueError(
                f'radius must be within (0, cutoff]: the environment holds only the neighbours within cutoff = '
                f'{cutoff} Å, got radius = {radius} Å'
            )
        if not 0 <= trainable_layers <= EQUIVARIANT_BLOCKS:
            raise ValueError(f'trainable_layers must be within 0…{EQUIVARIANT_BLOCKS}, got {trainable_layers}')
        with torch.random.fork_rng():  # loading builds (then overwrites) random weights: keep the caller's RNG
            model, self_cutoff, digest = pretrained_backbone(checkpoint)
        if checkpoint_sha256 is not None and checkpoint_sha256 != digest:
            raise ValueError(f'the SevenNet checkpoint {checkpoint!r} in this sevenn is not the one this policy was '
                             f'trained on (sha256 {digest[:12]}… ≠ {checkpoint_sha256[:12]}…)')  # fmt: skip
        scalars = 128  # SevenNet-0's scalar channels after each equivariant block
        super().__init__(
            d_max, cutoff, lmax, channels, hidden, grid, radial,
            backbone_channels=backbone_channels, critic_inputs=scalars + channels * (lmax + 1) + 1,
        )  # fmt: skip
        self.radius, self.backbone_channels = float(radius), int(backbone_channels)
        self.trainable_layers, self.backbone_lr_scale = int(trainable_layers), float(backbone_lr_scale)
        self.checkpoint, self.checkpoint_sha256, self.graph_cutoff = checkpoint, digest, self_cutoff
        first_tuned = EQUIVARIANT_BLOCKS - self.trainable_layers
        # not registered as submodules: frozen and rebuilt from sevenn, so not in the state dict
        self.__dict__['_model'] = model
        modules = model._modules.items()
        self.__dict__['_frozen'] = [module for name, module in modules if _block(name) < first_tuned]
        self.__dict__['_critic_blocks'] = [m for name, m in modules if first_tuned <= _block(name) < EQUIVARIANT_BLOCKS]
        self.tuned = torch.nn.ModuleList(copy.deepcopy(self._critic_blocks))  # fine-tuned: float32, saved
        for parameter in self.tuned.parameters():
            parameter.requires_grad_(True)
        irreps = o3.Irreps('128x0e+64x1e+32x2e')
        c = self.backbone_channels
        self.project = o3.Linear(irreps, o3.Irreps(f'{c}x0e+{c}x1e+{c}x2e')).double()
        self.critic_scalars = _mlp(scalars, hidden, scalars)
        self._cache: dict[bytes, t.Any] = {}

    @property
    def architecture(self) -> dict[str, t.Any]:
        """What :func:`aiida_rlpath.rl.models.build_policy` needs to rebuild this model."""
        return {
            **super().architecture, 'radius': self.radius, 'backbone_channels': self.backbone_channels,
            'trainable_layers': self.trainable_layers, 'backbone_lr_scale': self.backbone_lr_scale,
            'checkpoint': self.checkpoint, 'checkpoint_sha256': self.checkpoint_sha256,
        }  # fmt: skip

    def parameter_groups(self, learning_rate: float) -> list[dict]:
        """Adam's groups: the tuned backbone blocks at ``backbone_lr_scale`` × ``learning_rate``, the rest at it."""
        tuned = {id(p) for p in self.tuned.parameters()}
        rest = [p for p in self.parameters() if id(p) not in tuned and p.requires_grad]
        groups = [{'params': rest, 'lr': learning_rate}]
        if self.trainable_layers:
            groups.append({'params': list(self.tuned.parameters()), 'lr': learning_rate * self.backbone_lr_scale})
        return groups

    # -- backbone --------------------------------------------------------------------------------------------
    def _graph(self, vectors: torch.Tensor, numbers: torch.Tensor, bond: torch.Tensor):
        """SevenNet's input graph of the cluster: the two O at ±bond/2 about the centre (indices 0, 1), then every
        neighbour within ``radius`` Å (non-periodic: the periodic images are already unfolded)."""
        from ase import Atoms
        from sevenn.atom_graph_data import AtomGraphData
        from sevenn.train.dataload import unlabeled_atoms_to_graph

        keep = vectors.norm(dim=1) <= self.radius
        positions = np.concatenate([np.stack([-bond.numpy() / 2, bond.numpy() / 2]), vectors[keep].numpy()])
        cluster = Atoms(numbers=[8, 8, *numbers[keep].tolist()], positions=positions, pbc=False)
        return AtomGraphData.from_numpy_dict(unlabeled_atoms_to_graph(cluster, self.graph_cutoff))

    def _frozen_features(self, vectors, numbers, bond):
        """The graph after the frozen blocks (cached by the cluster's exact coordinates)."""
        key = b''.join(np.ascontiguousarray(x.numpy()).tobytes() for x in (vectors, numbers, bond))
        if key not in self._cache:
            if len(self._cache) > 512:
                self._cache.clear()
            with torch.no_grad():
                data = self._model._preprocess(self._graph(vectors, numbers, bond))
                for module in self._frozen:
                    data = module(data)
            self._cache[key] = data
        return self._cache[key]

    @staticmethod
    def _run(blocks, data) -> torch.Tensor:
        data = data.clone()
        for module in blocks:
            data = module(data)
        return data['x'][:2].sum(0).double()  # the two O atoms: order-free

    def backbone(self, vectors, numbers, bond, multipoles) -> dict:
        """Moments projected from the tuned blocks' O features, and the critic's input: the frozen copy's O
        scalars with the multipole invariants."""
        data = self._frozen_features(vectors, numbers, bond)
        tuned = self.project(self._run(self.tuned, data))
        with torch.no_grad():
            pretrained = self._run(self._critic_blocks, data)
        c = self.backbone_channels
        moments = [tuned[:c, None], tuned[c : 4 * c].reshape(c, 3), tuned[4 * c :].reshape(c, 5)]
        critic = torch.cat([self.critic_scalars(pretrained[:128]), *_invariants(multipoles), bond.norm()[None]])
        return {'moments': moments, 'critic': critic}


def _block(name: str) -> int:
    """The interaction block a SevenNet module belongs to (-1: the embeddings before the first, 99: the readout)."""
    head = name.split('_')[0]
    if head.isdigit():
        return int(head)
    return -1 if name in ('edge_embedding', 'onehot_idx_to_onehot', 'onehot_to_feature_x') else 99
