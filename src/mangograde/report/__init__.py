"""Figures and reports drawn from saved results (never fits or predicts)."""
