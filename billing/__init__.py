"""The pure core: money, tax, fee plans, periods and business days, payment splits, Zengin
records, and the error tree. No I/O and no ORM: plain functions over plain values."""
