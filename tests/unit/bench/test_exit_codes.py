"""Device failures share one documented exit code (DESIGN.md: 5), apart from bad input (2) and crashes (1)."""

from __future__ import annotations

import pytest

from bench.devices.imx500.session import InjectionFailed
from bench.devices.rb5.aihub import AIHubError
from bench.devices.rb5.qnn_adb import BoardError
from bench.devices.tensorrt.build import EngineBuildFailed
from bench.devices.tensorrt.cuda_runtime import CudaError
from bench.devices.tensorrt.session import EngineLoadFailed
from bench.errors import BadInput, DeviceFailure


@pytest.mark.parametrize("error", [EngineBuildFailed, EngineLoadFailed, CudaError, AIHubError, BoardError,
                                   InjectionFailed])
def test_every_adapters_device_failure_exits_5(error: type[DeviceFailure]) -> None:
    assert issubclass(error, DeviceFailure) and not issubclass(error, BadInput)
    assert error("x").exit_code == 5
