"""The OTLP collector: receivers for gRPC and HTTP, decoding, normalisation, and the ingest pipeline.

receiver (gRPC | HTTP) → Ingest.export → decode worker (decompress, parse, normalise)
                       → warehouse Writer (group commit) → answer the exporter

The package re-exports nothing: a decode worker imports `collector.decode` alone, and importing
the package must not load gRPC, uvicorn and DuckDB into every worker.
"""
