"""The rate-distortion bench behind ``neco eval``, as a library (it never imports the CLI):
`codecs` (what it compares, built-in and from ``neco.codecs`` entry points), `run` (measuring,
in parallel, resumable through `cache`), `metrics` and `perceptual` (quality metrics), `video`
(video clips as sources), `report` (JSON, CSV, BD tables, with `bdrate`) and `plot` (RD plots)."""
