"""The hosted firmware's MP services (peasm.runners.firmware), by their PI-spec contract,
called directly on a machine that is plain Python memory."""
from __future__ import annotations

import struct

import pytest

from peasm import uefi
from peasm.runners.firmware import ERR, Firmware

MP_GUID = uefi.GUIDS["EFI_MP_SERVICES_PROTOCOL_GUID"].bytes_le


class PyMachine:
    """Memory as a bytearray; services are the Python callables themselves (by number)."""

    def __init__(self):
        self.mem = bytearray(1 << 20)
        self.top = 0x1000
        self.services = {}
        self.aps = []

    def alloc(self, size, data=None, *, align=8):
        self.top = (self.top + align - 1) // align * align
        address = self.top
        self.top += max(size, len(data or b""), 1)
        if data:
            self.write(address, data)
        return address

    def alloc_pages(self, size):
        return self.alloc(size, align=4096)

    def read(self, address, size):
        return bytes(self.mem[address:address + size])

    def write(self, address, data):
        self.mem[address:address + len(data)] = data

    def service(self, fn, name, nargs):
        address = self.alloc(8)
        self.services[name] = fn
        return address

    def start_ap(self, procedure, argument):
        self.aps.append((procedure, argument))


def _fw(tmp_path, **kw):
    m = PyMachine()
    fw = Firmware(m, tmp_path, out=None, **kw)
    call = lambda name, *args: m.services[name](list(args) + [0] * (10 - len(args)))  # noqa: E731
    return m, fw, call


def _u64(m, address):
    return struct.unpack("<Q", m.read(address, 8))[0]


def test_locate_and_count(tmp_path):
    m, fw, call = _fw(tmp_path, cpus=4)
    guid, out = m.alloc(16, MP_GUID), m.alloc(8)
    assert call("EFI_BOOT_SERVICES.LocateProtocol", guid, 0, out) == 0
    assert _u64(m, out) == fw.mp
    count, enabled = m.alloc(8), m.alloc(8)
    assert call("EFI_MP_SERVICES_PROTOCOL.GetNumberOfProcessors", fw.mp, count, enabled) == 0
    assert (_u64(m, count), _u64(m, enabled)) == (4, 4)
    who = m.alloc(8)
    assert call("EFI_MP_SERVICES_PROTOCOL.WhoAmI", fw.mp, who) == 0 and _u64(m, who) == 0


def test_no_mp_services(tmp_path):
    m, fw, call = _fw(tmp_path, cpus=4, mp_services=False)
    assert call("EFI_BOOT_SERVICES.LocateProtocol", m.alloc(16, MP_GUID), 0, m.alloc(8)) == ERR["EFI_NOT_FOUND"]


def test_startup_all_aps_non_blocking(tmp_path):
    m, fw, call = _fw(tmp_path, cpus=3)
    event = m.alloc(8)
    assert call("EFI_BOOT_SERVICES.CreateEvent", 0, uefi.CONSTANTS["TPL_CALLBACK"], 0, 0, event) == 0
    ev = _u64(m, event)
    startup = "EFI_MP_SERVICES_PROTOCOL.StartupAllAPs"
    assert call(startup, fw.mp, 0x1234, 0, 0, 0, 7, 0) == ERR["EFI_UNSUPPORTED"]       # blocking
    assert call(startup, fw.mp, 0x1234, 1, ev, 0, 7, 0) == ERR["EFI_UNSUPPORTED"]      # one by one
    assert call(startup, fw.mp, 0x1234, 0, ev + 8, 0, 7, 0) == ERR["EFI_INVALID_PARAMETER"]
    assert call(startup, fw.mp, 0, 0, ev, 0, 7, 0) == ERR["EFI_INVALID_PARAMETER"]
    assert m.aps == []
    assert call(startup, fw.mp, 0x1234, 0, ev, 0, 7, 0) == 0
    assert m.aps == [(0x1234, 7), (0x1234, 7)]                                          # every AP
    assert call(startup, fw.mp, 0x1234, 0, ev, 0, 7, 0) == ERR["EFI_NOT_READY"]        # still busy


def test_one_processor_has_no_aps_to_start(tmp_path):
    m, fw, call = _fw(tmp_path, cpus=1)
    event = m.alloc(8)
    call("EFI_BOOT_SERVICES.CreateEvent", 0, 8, 0, 0, event)
    assert call("EFI_MP_SERVICES_PROTOCOL.StartupAllAPs", fw.mp, 0x1234, 0, _u64(m, event), 0, 0, 0) \
        == ERR["EFI_NOT_STARTED"]


@pytest.mark.parametrize("kind", ["EVT_NOTIFY_SIGNAL", "EVT_NOTIFY_WAIT", "EVT_TIMER"])
def test_events_with_notification_are_refused(tmp_path, kind):
    m, fw, call = _fw(tmp_path)
    assert call("EFI_BOOT_SERVICES.CreateEvent", uefi.CONSTANTS[kind], 8, 0, 0, m.alloc(8)) \
        == ERR["EFI_UNSUPPORTED"]
