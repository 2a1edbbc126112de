"""Running a device that sits elsewhere: SSH transport, the job bundle, the device-side worker."""
