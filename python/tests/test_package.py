import inspect
import os
import subprocess
import sys

import kfuse
from kfuse import _kfuse


def test_version_and_backends_from_any_folder(tmp_path):
    out = subprocess.run([sys.executable, "-c",
                          "import kfuse; print(kfuse.__version__, kfuse.backends())"],
                         cwd=tmp_path, capture_output=True, text=True, check=True).stdout
    assert out.startswith(kfuse.__version__ + " [")
    assert "'cpu'" in out
    assert kfuse.__version__ == "0.1.0"


def test_stubs_ship_with_the_module():
    stub = os.path.join(os.path.dirname(_kfuse.__file__), "_kfuse.pyi")
    assert os.path.exists(stub)
    assert "def gauss_matvec(" in open(stub).read()


# The Python wrappers' keyword defaults are the C++ option structs' defaults.
WRAPPERS = {
    "gauss_matvec": kfuse.gauss_matvec, "kde": kfuse.kde,
    "gauss_matvec_grad_x": kfuse.gauss_matvec_grad_x, "mean_shift_step": kfuse.mean_shift_step,
    "mmd2": kfuse.mmd2, "kron_fuse": kfuse.kron_fuse, "rp_fuse": kfuse.rp_fuse,
    "cross_modal": kfuse.cross_modal_rp, "rff_fuse": kfuse.rff_fuse,
    "tensor_sketch": kfuse.tensor_sketch, "product_kernel_topk": kfuse.product_kernel_topk,
    "clip_loss": kfuse.clip_loss_forward, "siglip_loss": kfuse.siglip_loss_forward,
    "moe_router_topk": kfuse.moe_router_topk, "moe_plan": kfuse.moe_plan,
    "moe_grouped_gemm": kfuse.moe_grouped_gemm,
}


def test_keyword_defaults_are_the_cpp_defaults():
    assert set(WRAPPERS) == set(_kfuse._defaults)
    for op, fn in WRAPPERS.items():
        params = inspect.signature(fn).parameters
        for name, value in _kfuse._defaults[op].items():
            assert name in params, (op, name)
            assert params[name].default == value, (op, name, params[name].default, value)
