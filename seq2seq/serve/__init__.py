"""Serving trained models over HTTP: a JSON API with batching and limits, and a page.

``seq2seq-serve CKPT...`` (:mod:`seq2seq.cli.serve`) runs :func:`seq2seq.serve.app.create_app`
under uvicorn; ``python -m seq2seq.serve.loadtest`` measures it. See ``docs/serve.md``.
"""
