"""Delivery channels: pure builders plus thin async sends."""
