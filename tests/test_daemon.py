"""Processes go through the ZeroMQ broker to daemon workers and come back finished."""

from __future__ import annotations

import pytest
from lammps_inputs import SI_TERSOFF_ENERGY_PER_ATOM, si_diamond_script

pytestmark = pytest.mark.daemon


def test_submit_lammps_calcjob_through_daemon(submit_and_await, lmp_code):
    """The `lmp` code made by `setup` runs an aiida-lammps CalcJob submitted to a daemon worker."""
    import io

    from aiida import orm
    from aiida.plugins import CalculationFactory

    from aiida_rlpath.physics.runtime import lammps_potential_path

    potential = orm.SinglefileData(io.BytesIO(lammps_potential_path('Si.tersoff').read_bytes()), 'Si.tersoff')
    script = orm.SinglefileData(io.StringIO(si_diamond_script('Si.tersoff')), 'input.in')
    builder = CalculationFactory('lammps.raw').get_builder()
    builder.code = lmp_code
    builder.script = script
    builder.files = {'potential': potential}
    builder.metadata.options.resources = {'num_machines': 1, 'num_mpiprocs_per_machine': 1}
    builder.metadata.options.withmpi = False
    builder.metadata.label = 'si-diamond-tersoff'

    node = submit_and_await(builder, timeout=180)

    assert node.is_finished_ok, node.exit_status
    output = node.outputs.retrieved.base.repository.get_object_content('lammps.out')
    energy_line = next(line for line in output.splitlines() if line.startswith('RLPATH_ENERGY'))
    assert float(energy_line.split()[1]) / 8 == pytest.approx(SI_TERSOFF_ENERGY_PER_ATOM, abs=0.01)
    assert node.outputs.results.get_dict()['compute_variables']['errors'] == []
