"""Helpers shared by the work chains."""

from __future__ import annotations

from aiida.common.links import LinkType
from aiida.orm import ProcessNode

__all__ = ('call_once', 'retire_interrupted', 'settings_validator')

INTERRUPTED = 'interrupted: its daemon worker was lost mid-run; the parent re-ran this call'


def _retire(node: ProcessNode) -> int:
    count = 0
    for child in node.called:
        count += _retire(child)
    if not node.is_terminated:
        from plumpy import ProcessState

        node.set_process_state(ProcessState.KILLED)
        node.set_process_status(INTERRUPTED)
        node.seal()
        count += 1
    return count


def retire_interrupted(workchain, label: str) -> int:
    """Mark the calls ``label`` of ``workchain`` that never terminated (their worker died mid-run) as killed.

    A work chain resumes from its last checkpoint, so a step whose in-process calcfunction or workfunction was
    running when the worker died runs again; the lost attempt would otherwise stay 'running' for ever. Marking
    it killed keeps the graph honest: one finished call per step, and any lost attempt visibly interrupted.
    Returns how many nodes were retired (reported on the work chain).
    """
    retired = 0
    links = workchain.node.base.links.get_outgoing(
        link_type=(LinkType.CALL_CALC, LinkType.CALL_WORK), link_label_filter=label
    ).all()
    for link in links:
        if not link.node.is_terminated:
            retired += _retire(link.node)
    if retired:
        workchain.report(f'{label}: retired {retired} call(s) interrupted by a lost worker; running it again')
    return retired


def call_once(workchain, label: str, function, *args, **kwargs):
    """Call the process function ``function`` under the call link ``label`` once per work chain, even across a
    lost daemon worker.

    If a *finished* call ``label`` already exists (the worker died after it finished but before the work chain
    saved its checkpoint), its outputs are returned instead of running it again, so no step is duplicated;
    unfinished attempts are retired first (see :func:`retire_interrupted`). Returns what the process function
    returns: its single output node, or a dictionary of its outputs.
    """
    retire_interrupted(workchain, label)
    links = workchain.node.base.links.get_outgoing(
        link_type=(LinkType.CALL_CALC, LinkType.CALL_WORK), link_label_filter=label
    ).all()
    for link in links:
        if link.node.is_finished_ok:
            outputs = {
                out.link_label: out.node
                for out in link.node.base.links.get_outgoing(link_type=(LinkType.CREATE, LinkType.RETURN)).all()
            }
            workchain.report(
                f'{label}: reusing finished call <{link.node.pk}> (its worker was lost before the checkpoint)'
            )
            return outputs['result'] if set(outputs) == {'result'} else outputs
    return function(*args, metadata={'call_link_label': label}, **kwargs)


def settings_validator(port: str, parse):
    """A port validator that builds the port's settings with ``parse`` and names ``port`` in the error it returns
    (``TypeError``/``ValueError`` from ``parse`` become the message; anything else is a bug and propagates)."""

    def validate(value, _):
        try:
            parse(value)
        except (TypeError, ValueError) as exception:
            return f'invalid `{port}`: {exception}'
        return None

    return validate
