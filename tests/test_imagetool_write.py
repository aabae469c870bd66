"""`imagetool write`: safety checks against fake devices; copy + verify on a regular file."""
from __future__ import annotations

import io
import os
from pathlib import Path

import pytest

from imagetool import ImageError
from imagetool import usb
from imagetool.cli import run
from imagetool.image import Item, build_image
from tests.test_imagetool_support import MiB, fake_efi, pseudo_random


class FakeSystem(usb.System):
    """A machine described by dictionaries: block devices, sysfs/procfs files, symlinks."""

    def __init__(self):
        self.blockdevs: dict[str, tuple[int, int]] = {}
        self.files: dict[str, str] = {"/proc/self/mounts": "", "/proc/swaps": "Filename\tType\tSize\tUsed\tPriority\n"}
        self.links: dict[str, str] = {}

    def add_disk(self, name: str, major: int, minor: int, *, size_bytes: int, removable: bool = True,
                 partitions: int = 0, dev_path: str | None = None, model: str = "Flash Disk") -> str:
        sysdir = f"/sys/devices/pci0000:00/usb1/1-1/host6/target6:0:0/6:0:0:0/block/{name}"
        dev = dev_path or f"/dev/{name}"
        self.blockdevs[dev] = (major, minor)
        self.links[f"/sys/dev/block/{major}:{minor}"] = sysdir
        self.files[f"{sysdir}/size"] = f"{size_bytes // 512}\n"
        self.files[f"{sysdir}/removable"] = "1\n" if removable else "0\n"
        self.files[f"{sysdir}/dev"] = f"{major}:{minor}\n"
        self.files[f"{sysdir}/device/model"] = model + "\n"
        self.files[f"{sysdir}/device/vendor"] = "ACME\n"
        for i in range(1, partitions + 1):
            pname = f"{name}{i}"
            self.blockdevs[f"/dev/{pname}"] = (major, minor + i)
            self.links[f"/sys/dev/block/{major}:{minor + i}"] = f"{sysdir}/{pname}"
            self.files[f"{sysdir}/{pname}/partition"] = f"{i}\n"
            self.files[f"{sysdir}/{pname}/dev"] = f"{major}:{minor + i}\n"
            self.files[f"{sysdir}/{pname}/size"] = "2048\n"
        return sysdir

    # -- the System interface --
    def device_number(self, path):
        if path in self.blockdevs:
            return self.blockdevs[path]
        if os.path.exists(path):
            return None  # a real path that is not one of our fake block devices
        raise ImageError(f"{path}: no such device")

    def read(self, path):
        return self.files.get(path)

    def listdir(self, path):
        prefix = path.rstrip("/") + "/"
        names = {k[len(prefix):].split("/", 1)[0] for k in self.files if k.startswith(prefix)}
        return sorted(names)

    def realpath(self, path):
        return self.links.get(path, path)


GiB = 1 << 30


@pytest.fixture
def fake() -> FakeSystem:
    sysm = FakeSystem()
    sysm.add_disk("sdb", 8, 16, size_bytes=8 * GiB, partitions=2)
    sysm.add_disk("sda", 8, 0, size_bytes=500 * GiB, removable=False, partitions=3, model="Samsung SSD")
    sysm.add_disk("sdc", 8, 32, size_bytes=4 * MiB)
    return sysm


def test_accepts_whole_removable_unmounted_disk(fake):
    t = usb.check_target("/dev/sdb", 100 * MiB, fake)
    assert (t.name, t.size, t.removable, t.partitions) == ("sdb", 8 * GiB, True, ["sdb1", "sdb2"])
    assert "ACME Flash Disk" in t.describe() and "8.0 GiB" in t.describe()


def test_refuses_regular_file_and_missing(fake, tmp_path):
    f = tmp_path / "file"
    f.write_bytes(b"x")
    with pytest.raises(ImageError, match="not a block device"):
        usb.check_target(str(f), 1, fake)
    with pytest.raises(ImageError, match="no such device"):
        usb.check_target("/dev/sdz", 1, fake)


def test_refuses_partition_and_names_the_disk(fake):
    with pytest.raises(ImageError, match=r"is a partition \(sdb1\); give the whole disk /dev/sdb"):
        usb.check_target("/dev/sdb1", 1, fake)


def test_refuses_fixed_disk_unless_forced(fake):
    with pytest.raises(ImageError, match="not a removable disk.*--force-fixed"):
        usb.check_target("/dev/sda", MiB, fake)
    assert usb.check_target("/dev/sda", MiB, fake, force_fixed=True).name == "sda"


def test_refuses_mounted_partition_even_via_symlink_names(fake):
    fake.blockdevs["/dev/disk/by-uuid/ABCD-1234"] = (8, 18)  # another name for sdb2
    fake.files["/proc/self/mounts"] = ("sysfs /sys sysfs rw 0 0\n"
                                       "/dev/disk/by-uuid/ABCD-1234 /media/my\\040stick vfat rw 0 0\n")
    with pytest.raises(ImageError, match=r"/dev/sdb2 is mounted at /media/my stick; unmount it first"):
        usb.check_target("/dev/sdb", MiB, fake)


def test_refuses_mounted_whole_disk(fake):
    fake.files["/proc/self/mounts"] = "/dev/sdb /mnt vfat rw 0 0\n"
    with pytest.raises(ImageError, match="/dev/sdb is mounted at /mnt"):
        usb.check_target("/dev/sdb", MiB, fake)


def test_other_mounts_do_not_matter(fake):
    fake.files["/proc/self/mounts"] = "/dev/sda1 / ext4 rw 0 0\n/dev/sda2 /home ext4 rw 0 0\ntmpfs /tmp tmpfs rw 0 0\n"
    assert usb.check_target("/dev/sdb", MiB, fake).name == "sdb"


def test_refuses_swap_and_holders(fake):
    fake.files["/proc/swaps"] += "/dev/sdb1  partition  1024  0  -2\n"
    with pytest.raises(ImageError, match="sdb1 is used as swap"):
        usb.check_target("/dev/sdb", MiB, fake)
    fake.files["/proc/swaps"] = ""
    sysdir = fake.links["/sys/dev/block/8:16"]
    fake.files[f"{sysdir}/sdb2/holders/dm-0"] = ""
    with pytest.raises(ImageError, match="sdb2 is in use by dm-0"):
        usb.check_target("/dev/sdb", MiB, fake)


def test_refuses_smaller_device(fake):
    with pytest.raises(ImageError, match="smaller than the image"):
        usb.check_target("/dev/sdc", 5 * MiB, fake)
    assert usb.check_target("/dev/sdc", 4 * MiB, fake).size == 4 * MiB


def test_linux_system_sees_this_machine():
    real = usb.LinuxSystem()
    assert real.device_number("/dev/null") is None  # a character device
    assert real.read("/proc/self/mounts")
    with pytest.raises(ImageError, match="no such device"):
        real.device_number("/dev/definitely-not-here")


# ---- copy and verify --------------------------------------------------------------------------
def test_copy_and_verify_on_regular_file(tmp_path):
    img = tmp_path / "src.img"
    img.write_bytes(pseudo_random(9 * MiB + 12345, 3))
    dev = tmp_path / "stick"
    dev.write_bytes(b"\xAA" * (16 * MiB))  # old contents beyond the image stay as they were
    seen = []
    n = usb.copy_and_verify(str(img), str(dev), progress=lambda s, d, t: seen.append((s, d, t)), chunk=MiB)
    assert n == img.stat().st_size
    data = dev.read_bytes()
    assert data[:n] == img.read_bytes() and data[n:] == b"\xAA" * (16 * MiB - n)
    writing = [d for s, d, _ in seen if s == "writing"]
    verifying = [d for s, d, _ in seen if s == "verifying"]
    assert writing == sorted(writing) and writing[-1] == n and len(writing) == 10
    assert verifying[-1] == n


def test_copy_detects_a_device_that_lies(tmp_path, monkeypatch):
    img = tmp_path / "src.img"
    img.write_bytes(pseudo_random(3 * MiB, 4))
    dev = tmp_path / "stick"
    dev.write_bytes(bytes(4 * MiB))
    real_pwrite = os.pwrite

    def flaky(fd, data, offset):  # drops one byte in the second MiB, like a fake-capacity stick
        buf = bytearray(data)
        if offset <= MiB + 77 < offset + len(buf):
            buf[MiB + 77 - offset] ^= 0xFF
        return real_pwrite(fd, bytes(buf), offset)

    monkeypatch.setattr(usb.os, "pwrite", flaky)
    with pytest.raises(ImageError, match=f"verification failed: byte {MiB + 77} differs"):
        usb.copy_and_verify(str(img), str(dev), chunk=MiB)


# ---- the CLI, with a fake device backed by a regular file --------------------------------------
@pytest.fixture
def image(tmp_path) -> Path:
    efi = fake_efi(tmp_path / "e.efi")
    out = tmp_path / "w.img"
    build_image(out, [Item("/EFI/BOOT/BOOTX64.EFI", src=efi)], size_mib=6)
    return out


def _stick(tmp_path, fake: FakeSystem, size=8 * MiB, **kw) -> Path:
    stick = tmp_path / "stick.bin"
    stick.write_bytes(b"\x11" * size)
    fake.add_disk("sdd", 8, 48, size_bytes=size, dev_path=str(stick), **kw)
    return stick


def test_cli_write_asks_and_does_nothing_when_declined(tmp_path, image, fake, capsys, monkeypatch):
    stick = _stick(tmp_path, fake)
    monkeypatch.setattr("sys.stdin", io.StringIO("n\n"))
    status = run(["write", str(image), str(stick)], obj={"system": fake})
    err = capsys.readouterr().err
    assert status == 1
    assert "About to write" in err and "ACME Flash Disk" in err and "not confirmed" in err
    assert stick.read_bytes() == b"\x11" * (8 * MiB)


def test_cli_write_after_yes_answer(tmp_path, image, fake, capsys, monkeypatch):
    stick = _stick(tmp_path, fake)
    monkeypatch.setattr("sys.stdin", io.StringIO("y\n"))
    assert run(["write", str(image), str(stick)], obj={"system": fake}) == 0
    err = capsys.readouterr().err
    assert "writing: 100%" in err and "verifying: 100%" in err and "verified" in err
    assert stick.read_bytes()[:6 * MiB] == image.read_bytes()
    assert run(["verify", str(stick)]) == 0  # the stick now holds a valid image (plus old tail)
    assert "warning: the GPT covers 6291456 bytes of 8388608" in capsys.readouterr().out


def test_cli_write_with_yes_flag_and_refusals(tmp_path, image, fake, capsys):
    stick = _stick(tmp_path, fake, removable=False)
    assert run(["write", str(image), str(stick), "--yes"], obj={"system": fake}) == 1
    assert "--force-fixed" in capsys.readouterr().err
    assert stick.read_bytes() == b"\x11" * (8 * MiB)
    assert run(["write", str(image), str(stick), "--yes", "--force-fixed"], obj={"system": fake}) == 0
    assert stick.read_bytes()[:6 * MiB] == image.read_bytes()
    small = tmp_path / "small.bin"
    small.write_bytes(b"\x22" * MiB)
    fake.add_disk("sde", 8, 64, size_bytes=MiB, dev_path=str(small))
    capsys.readouterr()
    assert run(["write", str(image), str(small), "--yes"], obj={"system": fake}) == 1
    err = capsys.readouterr().err
    assert "smaller than the image" in err and len(err.strip().splitlines()) == 1
    assert small.read_bytes() == b"\x22" * MiB
