"""call_once and retire_interrupted: what a work chain does after a lost daemon worker."""

from __future__ import annotations

from aiida import orm
from aiida.common.links import LinkType
from aiida.engine import WorkChain, calcfunction, run_get_node

from aiida_rlpath.workflows.utils import INTERRUPTED, call_once


@calcfunction
def add_one(x: orm.Int) -> orm.Int:
    return orm.Int(x.value + 1)


class ResumingWorkChain(WorkChain):
    """Simulates a resume: an attempt left 'running' by a dead worker, then a step that runs twice."""

    @classmethod
    def define(cls, spec):
        super().define(spec)
        spec.outline(cls.work)
        spec.output('first', valid_type=orm.Int)
        spec.output('again', valid_type=orm.Int)

    def work(self):
        lost = orm.CalcFunctionNode()  # an attempt whose worker died: created, running, never finished
        lost.set_process_state('running')
        lost.base.links.add_incoming(self.node, LinkType.CALL_CALC, 'add')
        lost.store()
        first = call_once(self, 'add', add_one, orm.Int(1))
        again = call_once(self, 'add', add_one, orm.Int(1))  # the step re-executed after the checkpoint was lost
        self.out('first', first)
        self.out('again', again)


def test_call_once_reuses_a_finished_call_and_retires_a_lost_one(aiida_profile_clean):
    results, node = run_get_node(ResumingWorkChain)
    assert node.is_finished_ok
    assert results['first'].uuid == results['again'].uuid and results['first'].value == 2
    calls = node.base.links.get_outgoing(link_type=LinkType.CALL_CALC, link_label_filter='add').all()
    finished = [link.node for link in calls if link.node.is_finished_ok]
    killed = [link.node for link in calls if link.node.is_killed]
    assert len(calls) == 2 and len(finished) == 1 and len(killed) == 1
    assert killed[0].process_status == INTERRUPTED and killed[0].is_sealed
