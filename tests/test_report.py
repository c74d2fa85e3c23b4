"""QC pictures: rendered without pyplot state, never switching the program's matplotlib backend."""

import subprocess
import sys

CODE = """
import matplotlib
matplotlib.use("svg")
import pandas as pd
from discmeasure.report import qc
ch = pd.DataFrame({"level": ["L4-L5"], "bulge_mm_pre": [4.0], "bulge_mm_post": [3.1], "bulge_mm_pct": [-22.5],
                   "bulge_mm_within_repeatability": [False]})
png = qc.png_bytes(qc.change_plot(ch))
import matplotlib.pyplot as plt
print(matplotlib.get_backend(), png[:8] == b"\\x89PNG\\r\\n\\x1a\\n", len(plt.get_fignums()))
"""


def test_qc_keeps_the_host_programs_backend():
    out = subprocess.run([sys.executable, "-c", CODE], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["svg", "True", "0"], out
