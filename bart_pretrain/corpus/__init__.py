"""Offline builders of the default corpus (``bart-pretrain build-data``): Debian package descriptions
(``debian``), the reST sources of the Python and Linux documentation packages (``docs_corpus``), the fallback where
apt is missing (``fallback``) and the build with its manifest (``build``). Run once at set-up, never in training."""
