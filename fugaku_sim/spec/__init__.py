"""fugaku_sim.spec"""
