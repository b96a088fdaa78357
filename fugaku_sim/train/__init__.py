"""fugaku_sim.train"""
