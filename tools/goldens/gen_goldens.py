#!/usr/bin/python3
"""Writes every golden file under tests/goldens/ (run: /usr/bin/python3 tools/goldens/gen_goldens.py).

Each cases_*.py module in this folder defines `generate()`; pass module names to run only some:
  /usr/bin/python3 tools/goldens/gen_goldens.py cases_matmul cases_conv
"""
import glob
import importlib
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
torch.manual_seed(0)
torch.set_num_threads(1)

here = os.path.dirname(os.path.abspath(__file__))
mods = sys.argv[1:] or sorted(os.path.basename(p)[:-3] for p in glob.glob(os.path.join(here, "cases_*.py")))
for m in mods:
    print(m)
    importlib.import_module(m).generate()
