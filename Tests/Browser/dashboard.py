"""Drives the dashboard of a running `ferry up` in headless Chromium through Selenium, as an
operator would: the app nodes appear, drain is clicked on one of them, and the page shows it
draining. Prints the drained backend's address (the Swift test then asks `ferry switch stats`)
and saves a screenshot.

Usage: dashboard.py URL TOKEN SCREENSHOT.png
"""
import sys

from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

url, token, screenshot = sys.argv[1:4]
options = Options()
for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1400,1100"):
    options.add_argument(argument)
options.binary_location = "/usr/bin/chromium"
# Debian's driver, named outright: Selenium must not try to download one.
driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
try:
    driver.get(url + "#token=" + token)
    wait = WebDriverWait(driver, 30, ignored_exceptions=[StaleElementReferenceException])

    def app_backends(page):
        rows = page.find_elements(By.CSS_SELECTOR, "#switch tr[data-backend]")
        return [row for row in rows if row.find_elements(By.TAG_NAME, "td")[1].text == "app"]

    wait.until(lambda page: len(app_backends(page)) >= 1)
    wait.until(lambda page: page.find_elements(By.CSS_SELECTOR, "#nodes tr[data-node]"))
    address = app_backends(driver)[0].get_attribute("data-backend")
    selector = '#switch tr[data-backend="%s"]' % address

    def click_drain(page):
        page.find_element(By.CSS_SELECTOR, selector + " button.drain").click()
        return True

    wait.until(click_drain)
    wait.until(lambda page: page.find_element(By.CSS_SELECTOR, selector + " .state").text == "draining")
    wait.until(lambda page: "draining" in page.find_element(By.ID, "status").text)
    driver.save_screenshot(screenshot)
    print(address)
finally:
    driver.quit()
