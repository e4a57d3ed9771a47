"""Retrieval: embedders, a FAISS index with its documents beside it, BM25 hybrid, chunking."""
