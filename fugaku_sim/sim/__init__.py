"""fugaku_sim.sim"""
