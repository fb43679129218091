"""pi-prep.flash and pi-prep.capture: an SD card written for one board, unable to touch the
wrong disk, and a prepared card read back into an image for many.

Modules, one job each: device (kernel facts), refusals (what the facts forbid), image
(readers), writer (write, read back, compare), partitions, fat (mtools), ext4 (e2fsprogs),
bootprep (the boot files), prepare (writing them), capture, run (flash's order), cli.
"""
