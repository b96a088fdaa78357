"""fugaku_sim.evaluate"""
