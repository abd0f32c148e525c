"""The CHGNet models that ship in the ``chgnet`` wheel, side by side on simple crystals with known properties.

    python benchmarks/chgnet_models.py [--models 0.3.0 r2scan] [--strain 0.06]

For each model and each reference crystal the script runs the crystal-design calculators exactly as a design
episode does (:func:`aiida_rlpath.physics.properties.evaluate_property`: CHGNet cell relaxation, density in
g/cm³; Birch–Murnaghan fit of E(V) over 7 volumes within ±``--strain``, bulk modulus in GPa) and compares them
with experiment. It is the evidence behind :class:`~aiida_rlpath.physics.properties.PropertySettings`'s default
``chgnet_model``.

Experimental values (room temperature): bulk moduli of Si, Ge, C (diamond), Al and Cu from C. Kittel,
*Introduction to Solid State Physics*, 8th ed., ch. 3, Table 3; NaCl, LiF, MgO and GaAs and all densities are
the commonly tabulated values (CRC Handbook of Chemistry and Physics). They are reference points good to a
few per cent, not targets a potential is fitted to.

The last line is one JSON object: per model, per crystal ``{'density', 'bulk_modulus', 'seconds'}``, and the
mean absolute relative errors ``density_mare`` and ``bulk_modulus_mare`` against experiment.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
from pymatgen.core import Lattice, Structure

from aiida_rlpath.physics.properties import PropertySettings, evaluate_property

#: formula -> (space group, cubic a in Å (a start; it is relaxed), species, fractional sites,
#:             experimental density g/cm³, experimental bulk modulus GPa)
REFERENCE = {
    'Si': ('Fd-3m', 5.43, ['Si'], [[0, 0, 0]], 2.329, 98.8),
    'Ge': ('Fd-3m', 5.66, ['Ge'], [[0, 0, 0]], 5.323, 77.2),
    'C': ('Fd-3m', 3.57, ['C'], [[0, 0, 0]], 3.515, 443.0),
    'Al': ('Fm-3m', 4.05, ['Al'], [[0, 0, 0]], 2.70, 72.2),
    'Cu': ('Fm-3m', 3.61, ['Cu'], [[0, 0, 0]], 8.96, 137.0),
    'NaCl': ('Fm-3m', 5.64, ['Na', 'Cl'], [[0, 0, 0], [0.5, 0.5, 0.5]], 2.165, 24.0),
    'LiF': ('Fm-3m', 4.03, ['Li', 'F'], [[0, 0, 0], [0.5, 0.5, 0.5]], 2.635, 69.8),
    'MgO': ('Fm-3m', 4.21, ['Mg', 'O'], [[0, 0, 0], [0.5, 0.5, 0.5]], 3.58, 160.0),
    'GaAs': ('F-43m', 5.65, ['Ga', 'As'], [[0, 0, 0], [0.25, 0.25, 0.25]], 5.318, 75.5),
}


def crystal(formula: str) -> Structure:
    """The primitive cell of reference crystal ``formula`` at its start lattice constant (Å)."""
    group, a, species, sites, *_ = REFERENCE[formula]
    return Structure.from_spacegroup(group, Lattice.cubic(a), species, sites).get_primitive_structure()


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--models', nargs='+', default=['0.3.0', 'r2scan'])
    parser.add_argument('--strain', type=float, default=PropertySettings().strain, help='EOS span, ± fraction')
    parser.add_argument('--crystals', nargs='+', default=list(REFERENCE), choices=list(REFERENCE))
    args = parser.parse_args(argv)

    out = {'strain': args.strain, 'crystals': args.crystals}
    print(f'{"model":>8} {"crystal":>7} {"rho":>7} {"rho_exp":>7} {"B_GPa":>7} {"B_exp":>7} {"s":>5}')
    for model in args.models:
        settings = PropertySettings(chgnet_model=model, strain=args.strain)
        rows, density_errors, modulus_errors = {}, [], []
        for formula in args.crystals:
            *_, density_exp, modulus_exp = REFERENCE[formula]
            start = time.perf_counter()
            # one relaxation: the bulk-modulus evaluation relaxes first, and its relaxed cell gives the density
            result = evaluate_property(crystal(formula), 'bulk_modulus', settings)
            density = float(result.relaxed.density) if result.relaxed is not None else float('nan')
            seconds = time.perf_counter() - start
            rows[formula] = {
                'density': round(density, 4),
                'bulk_modulus': round(result.value, 1) if result.ok else None,
                'seconds': round(seconds, 1),
            }
            if not result.ok:
                rows[formula]['error'] = result.message
            density_errors.append(abs(density / density_exp - 1))
            modulus_errors.append(abs(result.value / modulus_exp - 1) if result.ok else float('nan'))
            print(
                f'{model:>8} {formula:>7} {density:7.3f} {density_exp:7.3f} {result.value:7.1f} {modulus_exp:7.1f}'
                f' {seconds:5.1f}',
                flush=True,
            )
        out[model] = {
            'crystals': rows,
            'density_mare': round(float(np.nanmean(density_errors)), 4),
            'bulk_modulus_mare': round(float(np.nanmean(modulus_errors)), 4),
            'failed': sum(1 for row in rows.values() if row['bulk_modulus'] is None),
        }
        print(
            f'{model}: mean |relative error| density {out[model]["density_mare"]:.3f},'
            f' bulk modulus {out[model]["bulk_modulus_mare"]:.3f}',
            flush=True,
        )
    print(json.dumps(out))
    return out


if __name__ == '__main__':
    main()
