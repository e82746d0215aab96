"""Adapters to other tools: the Pillow format plugin (`pillow_plugin`), PIL images <-> neco's
pixel arrays (`pil_image`), Y4M and raw video pipes (`y4m`) and video files through PyAV
(`av_io`). None of them imports the `neco` facade, which imports the Pillow plugin."""
