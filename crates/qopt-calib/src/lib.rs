//! Calibration (DESIGN.md §6): streaming statistics, threshold methods and data sources.
