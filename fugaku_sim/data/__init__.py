"""fugaku_sim.data"""
