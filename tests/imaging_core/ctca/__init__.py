"""Tests of the CTCA analysis (imaging_core/ctca) and its phantom."""
