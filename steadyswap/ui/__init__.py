"""The local web UI: a FastAPI app serving one offline HTML/JS/CSS page (``steadyswap ui``).

Needs the ``ui`` extra (``pip install 'steadyswap[ui]'``); ``steadyswap.ui.app.create_app`` builds the app.
Runs go through ``steadyswap.api.swap_file``, the same engine as the CLI.
"""
