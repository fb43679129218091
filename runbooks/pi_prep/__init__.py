"""pi-prep: prepare Raspberry Pi class boards for Kubernetes (`inv pi-prep --host rp0`)."""
