"""QueryBuilder queries over REALIZE provenance, returned as tables (lists of flat dicts).

Everything comes from the graph a :class:`RealizeTrainingWorkChain` wrote: per-cycle metrics (``cycle_metrics``
outputs), all NEB barriers (``neb_barrier`` outputs under each episode step) and the kept oxidation events
(``oxidation_event`` outputs). Barriers in eV.
"""

from __future__ import annotations

import re

from aiida import orm

__all__ = ('barrier_table', 'cycle_table', 'episode_nodes', 'event_table', 'kept_episodes', 'step_table')

_CYCLE = re.compile(r'cycle_(\d+)_(\w+)')


def _calls(node: orm.ProcessNode, label: str, cls=orm.CalcFunctionNode):
    """(link label, called node) pairs of ``node`` whose label matches the SQL pattern ``label``, by label."""
    query = orm.QueryBuilder()
    query.append(orm.WorkflowNode, filters={'id': node.pk}, tag='parent')
    query.append(
        cls, with_incoming='parent', edge_filters={'label': {'like': label}}, edge_project='label', project='*', tag='c'
    )
    rows = [(row['parent--c']['label'], row['c']['*']) for row in query.iterdict()]
    return sorted(rows, key=lambda row: (row[0], row[1].pk))


def _finished(node) -> bool:
    return node.is_finished_ok


def cycle_table(training: orm.WorkflowNode) -> list[dict]:
    """One row per finished cycle: threshold and mean effective barrier (eV), success rate, kept episode, policy."""
    updates = {label: node for label, node in _calls(training, 'cycle_%_update') if _finished(node)}
    rows = []
    for label, node in _calls(training, 'cycle_%_metrics'):
        if not _finished(node):
            continue
        cycle = int(_CYCLE.match(label).group(1))
        metrics = node.outputs.result.get_dict()
        update = updates.get(f'cycle_{cycle:02d}_update')
        rows.append(
            {
                'cycle': cycle,
                'threshold': metrics['threshold'],
                'episodes': metrics['episodes'],
                'steps': metrics['steps'],
                'successes': metrics['successes'],
                'success_rate': metrics['success_rate'],
                'mean_effective_barrier': metrics['mean_effective_barrier'],
                'kept_barrier': metrics['kept_barrier'],
                'mean_return': metrics['mean_return'],
                'policy': update.outputs.policy.pk if update is not None else None,
            }
        )
    return rows


def episode_nodes(training: orm.WorkflowNode) -> list[tuple[int, int, orm.WorkflowNode]]:
    """(cycle, episode, node) of every episode the training submitted, in order."""
    rows = []
    for label, node in _calls(training, 'cycle_%_episode_%', orm.WorkflowNode):
        match = re.match(r'cycle_(\d+)_episode_(\d+)', label)
        rows.append((int(match.group(1)), int(match.group(2)), node))
    return rows


def step_table(episode: orm.WorkflowNode) -> list[dict]:
    """One row per finished step of an episode: outcome, reward, energies and barrier (eV)."""
    rows = []
    for label, step in _calls(episode, 'step_%', orm.WorkflowNode):
        if not _finished(step):
            continue
        record = step.outputs.record.get_dict()
        rows.append({'step': int(label.split('_')[1]), **{k: v for k, v in record.items() if k not in ('sample',)}})
    return rows


def barrier_table(training: orm.WorkflowNode) -> list[dict]:
    """Every NEB barrier measured during the training: cycle, episode, step, barrier (eV), method, converged."""
    rows = []
    for cycle, index, episode in episode_nodes(training):
        for label, step in _calls(episode, 'step_%', orm.WorkflowNode):
            if not _finished(step):
                continue
            for neb in step.called:
                if neb.process_label == 'neb_barrier' and _finished(neb):
                    result = neb.outputs.result
                    rows.append(
                        {
                            'cycle': cycle,
                            'episode': index,
                            'step': int(label.split('_')[1]),
                            'barrier': result['barrier'],
                            'method': result['method'],
                            'converged': result['converged'],
                        }
                    )
    return rows


def event_table(training: orm.WorkflowNode) -> list[dict]:
    """The kept oxidation events: cycle, the O atoms kept, their Si neighbours, the evolved structure's pk."""
    rows = []
    for label, node in _calls(training, 'cycle_%_event'):
        if not _finished(node):
            continue
        event = node.outputs.event.get_dict()
        cycle = int(_CYCLE.match(label).group(1))
        metrics = [n for lab, n in _calls(training, f'cycle_{cycle:02d}_metrics') if _finished(n)]
        rows.append(
            {
                'cycle': cycle,
                'effective_barrier': metrics[0].outputs.result['kept_barrier'] if metrics else None,
                'oxygens': event['oxygens'],
                'si_neighbours': event['si_neighbours'],
                'oo_distance': event['oo_distance'],
                'dissociated_structure': node.inputs.structure.pk,
                'next_structure': node.outputs.structure.pk,
            }
        )
    return rows


def kept_episodes(training: orm.WorkflowNode) -> list[tuple[int, int, orm.WorkflowNode]]:
    """(cycle, episode, node) of the episodes whose oxidation the training kept: the episodes whose final
    structure an ``oxidation_event`` evolved."""
    events = {node.inputs.structure.uuid for _, node in _calls(training, 'cycle_%_event') if _finished(node)}
    return [
        (cycle, index, episode)
        for cycle, index, episode in episode_nodes(training)
        if episode.is_finished_ok and episode.outputs.structure.uuid in events
    ]
